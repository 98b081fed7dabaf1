/** @module The gateway's exception filter, in-process through Nest's testing module: every error a JSON body with the right status. */
import 'reflect-metadata';
import { Controller, Get, NotFoundException, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import pino from 'pino';
import { ClusterError, ConfigError, RuntimeEnvError } from '../../runtime/errors';
import { ErrorFilter } from '../../gateway/common/error.filter';
import { HttpError } from '../../gateway/common/errors';
import { ServiceUnreachableError } from '../../gateway/flows/registry';

@Controller()
class ThrowingController {
  @Get('config') config(): never {
    throw new ConfigError("Unknown option 'x'. Valid options: a, b.");
  }
  @Get('cluster') cluster(): never {
    throw new ClusterError('Cannot reach the cluster.');
  }
  @Get('upstream') upstream(): never {
    throw new ServiceUnreachableError('Cannot reach http://h:1/openapi.json.');
  }
  @Get('env') env(): never {
    throw new RuntimeEnvError("runtime env 1a2b: node node-1 could not set it up at step 'npm ci': npm ci exited with code 1.");
  }
  @Get('missing') missing(): never {
    throw new NotFoundException('No execution f1.');
  }
  @Get('conflict') conflict(): never {
    throw new HttpError(409, 'ended already', { fields: { status: 'finished' }, headers: { 'x-why': 'ended' } });
  }
  @Get('bug') bug(): never {
    throw new TypeError("Cannot read properties of undefined (reading 'secret')");
  }
}

let app: INestApplication;
let base: string;

beforeAll(async () => {
  const mod = await Test.createTestingModule({ controllers: [ThrowingController] }).compile();
  app = mod.createNestApplication({ logger: false });
  app.useGlobalFilters(new ErrorFilter(pino({ level: 'silent' })));
  await app.listen(0, '127.0.0.1');
  base = await app.getUrl();
});

afterAll(async () => {
  await app?.close();
});

async function get(path: string) {
  const res = await fetch(`${base}/${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

test('NodusError codes become their HTTP statuses with the message kept', async () => {
  expect(await get('config')).toMatchObject({ status: 400, body: { statusCode: 400, error: 'Bad Request', message: "Unknown option 'x'. Valid options: a, b." } });
  expect((await get('cluster')).status).toBe(503);
  expect(await get('upstream')).toMatchObject({ status: 502, body: { error: 'Bad Gateway' } });
  expect(await get('env')).toMatchObject({ status: 502, body: { message: expect.stringContaining("could not set it up at step 'npm ci'") } });
});

test('HTTP exceptions keep their status, extra fields and headers', async () => {
  expect(await get('missing')).toMatchObject({ status: 404, body: { statusCode: 404, error: 'Not Found', message: 'No execution f1.' } });
  const c = await get('conflict');
  expect(c).toMatchObject({ status: 409, body: { statusCode: 409, error: 'Conflict', message: 'ended already', status: 'finished' } });
  expect(c.headers.get('x-why')).toBe('ended');
});

test('an unexpected error is a 500 with an error id, and neither its message nor a stack reaches the client', async () => {
  const r = await get('bug');
  expect(r.status).toBe(500);
  expect(r.body.errorId).toMatch(/^[0-9a-f]{8}$/);
  expect(JSON.stringify(r.body)).not.toMatch(/secret|at Object|\.ts:/);
});
