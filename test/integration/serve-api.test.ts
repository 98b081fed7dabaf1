/** A real ServeAPI listening on a free port in the test process, hit over HTTP with fetch. No cluster needed. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { InputsError, ServeAPI, forms as F, type EnterRequest, type ServeServer } from '../../serve';
import { OPENAPI_EXTENSION, SERVICES_PROTOCOL_VERSION, USER_HEADER, signUser } from '../../runtime/protocol/services';

const SECRET = 'test-secret';

describe('ServeAPI over HTTP', () => {
  let server: ServeServer;
  let url: string;
  let calls: { request: EnterRequest; inputs: Record<string, unknown> }[];
  let secretLookups: number;
  let log: jest.SpyInstance;
  let errorLog: jest.SpyInstance;

  const myModel = F.Model(
    F.Markdown('# My Service\nSpecify the number of tasks to run. Each takes 1 to 3 seconds.'),
    F.Break(),
    F.InputText({ label: 'Number of Tasks', name: 'tasks', value: '25' }),
    F.Submit('Submit'),
    F.Cancel('Cancel'),
  );

  beforeEach(async () => {
    calls = [];
    secretLookups = 0;
    log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    errorLog = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    const app = new ServeAPI({
      title: 'Test service',
      version: '2.0.0',
      bodyLimit: 1000,
      userSecret: async () => {
        secretLookups++;
        return SECRET;
      },
    });
    // The seed's handler, word for word but for Launch.
    app.enter(
      { path: '/', model: myModel, summary: 'My Service', description: 'Not so agentic example service.', tags: ['Test'], version: '1.0.0', author: 'you@example.com' },
      async (request, inputs) => {
        calls.push({ request, inputs });
        const error = new InputsError();
        let tasks = inputs.tasks;
        if (!tasks) error.add({ tasks: 'Please specify the number of concurrent tasks.' });
        if (typeof tasks === 'string') tasks = Number(tasks);
        if (tasks > 500) error.add({ tasks: 'Maximum number of concurrent tasks is 500' });
        if (tasks === 13) error.addGlobal('Unlucky number.');
        if (error.hasErrors()) throw error;
        return { launched: tasks };
      },
    );
    app.enter(
      {
        path: '/checked',
        model: F.Model(
          F.InputNumber({ name: 'n', max: 500, required: true }),
          F.InputText({ name: 'code', pattern: '[A-Z]{3}' }),
          F.InputDate({ name: 'day' }),
          F.Submit('Go'),
        ),
        summary: 'Checked',
      },
      (request, inputs) => {
        calls.push({ request, inputs });
        return { statusCode: 202, body: { accepted: inputs } };
      },
    );
    app.enter({ path: '/boom', model: [F.Submit('Go')], summary: 'Boom' }, () => {
      calls.push({ request: undefined as never, inputs: {} });
      throw new Error('database password is hunter2');
    });
    app.enter(
      { path: '/typed', model: F.fromZod(z.object({ tasks: z.number().int().max(10).default(3), name: z.string() })), summary: 'Typed' },
      (_request, inputs) => {
        calls.push({ request: _request, inputs });
        return { tasks: inputs.tasks * 2, name: inputs.name.toUpperCase() };
      },
    );
    server = await app.listen({ port: 0 });
    url = server.url;
  });

  afterEach(async () => {
    await server.close();
    log.mockRestore();
    errorLog.mockRestore();
  });

  const post = (path: string, body: string, contentType?: string, headers: Record<string, string> = {}) =>
    fetch(url + path, { method: 'POST', body, headers: { ...(contentType ? { 'content-type': contentType } : {}), ...headers } });

  test("the seed's curl -d '{\"tasks\": 100}' (sent as form-urlencoded) reaches the handler as { tasks: 100 }", async () => {
    const res = await post('/-/', '{"tasks": 100}', 'application/x-www-form-urlencoded');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ launched: 100 });
    expect(calls.map((c) => c.inputs)).toEqual([{ tasks: 100 }]);
  });

  test('a form-encoded body works, and the handler converts the text itself as kodosumi does', async () => {
    const res = await post('/-/', 'tasks=5', 'application/x-www-form-urlencoded');
    expect(await res.json()).toEqual({ launched: 5 });
    expect(calls[0].inputs).toEqual({ tasks: '5' });
  });

  test('the handler gets the entry, the base URL it was reached at and its headers', async () => {
    await post('/-/', '{"tasks": 1}', 'application/json', { 'x-extra': 'yes' });
    const { request } = calls[0];
    expect(request.entry).toEqual({ path: '/', route: '/-/', meta: expect.objectContaining({ summary: 'My Service', tags: ['Test'] }) });
    expect(request.baseUrl).toBe(url);
    expect(request.headers['x-extra']).toBe('yes');
    expect(request.raw.method).toBe('POST');
    expect(request.user).toBeUndefined();
  });

  test('GET of an entry returns its meta and form elements', async () => {
    const res = await fetch(`${url}/-/`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      meta: { summary: 'My Service', description: 'Not so agentic example service.', tags: ['Test'], version: '1.0.0', author: 'you@example.com', organization: '' },
      elements: myModel.elements,
    });
  });

  test("the handler's InputsError answers 200 with messages by field and form-wide", async () => {
    let res = await post('/-/', '{"tasks": 900}', 'application/json');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ errors: { tasks: ['Maximum number of concurrent tasks is 500'] } });
    res = await post('/-/', 'tasks=', 'application/x-www-form-urlencoded');
    expect(await res.json()).toEqual({ errors: { tasks: ['Please specify the number of concurrent tasks.'] } });
    res = await post('/-/', '{"tasks": 13}', 'application/json');
    expect(await res.json()).toEqual({ errors: { _global_: ['Unlucky number.'] } });
  });

  test('inputs that break the elements’ own rules are answered with errors without calling the handler', async () => {
    const res = await post('/-/checked', JSON.stringify({ n: 501, code: 'abc', day: '2024-13-01' }), 'application/json');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      errors: {
        n: ['Must be at most 500.'],
        code: ['Does not have the expected format.'],
        day: ['Must be a date written as YYYY-MM-DD, like 2024-12-31.'],
      },
    });
    expect(await (await post('/-/checked', 'code=ABC', 'application/x-www-form-urlencoded')).json()).toEqual({ errors: { n: ['This field is required.'] } });
    expect(calls).toEqual([]);
  });

  test('a result with a numeric statusCode and a body is sent as that status and body', async () => {
    const res = await post('/-/checked', 'n=7&code=ABC&day=2024-02-29', 'application/x-www-form-urlencoded');
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ accepted: { n: 7, code: 'ABC', day: '2024-02-29' } });
  });

  test('a handler that throws gives 500 with an errorId only; the stack and the id go to the service log', async () => {
    const res = await post('/-/boom', '{}', 'application/json');
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: string; errorId: string };
    expect(Object.keys(body).sort()).toEqual(['error', 'errorId']);
    expect(body.error).toBe('Internal error');
    expect(JSON.stringify(body)).not.toMatch(/hunter2|at /);
    const logged = errorLog.mock.calls.map((c) => c.join(' ')).join('\n');
    expect(logged).toContain(body.errorId);
    expect(logged).toContain('hunter2');
    expect(logged).toMatch(/serve-api\.test\.ts/);
  });

  test('a body over the limit gets 413 with a JSON message', async () => {
    const res = await post('/-/', JSON.stringify({ tasks: 1, pad: 'x'.repeat(2000) }), 'application/json');
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toMatch(/limit of 1000 bytes.*bodyLimit/);
    expect(calls).toEqual([]);
  });

  test('malformed JSON sent as application/json gets 400 with the reason', async () => {
    const res = await post('/-/', '{"tasks": ', 'application/json');
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/not valid JSON \(.+\)/);
    expect(calls).toEqual([]);
  });

  test('a multipart body is refused with 415 saying what to send instead', async () => {
    const form = new FormData();
    form.set('tasks', '3');
    const res = await fetch(`${url}/-/`, { method: 'POST', body: form });
    expect(res.status).toBe(415);
    expect(((await res.json()) as { error: string }).error).toMatch(/JSON or application\/x-www-form-urlencoded/);
  });

  test('openapi.json describes each entry, with the x-nodus extension on its POST', async () => {
    const doc = (await (await fetch(`${url}/openapi.json`)).json()) as any;
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toEqual({ title: 'Test service', version: '2.0.0' });
    expect(Object.keys(doc.paths).sort()).toEqual(['/-/', '/-/boom', '/-/checked', '/-/typed']);
    const op = doc.paths['/-/'];
    expect(op.get).toMatchObject({ summary: 'My Service', description: 'Not so agentic example service.', tags: ['Test'] });
    expect(op.post).toMatchObject({ summary: 'My Service', tags: ['Test'] });
    expect(op.post[OPENAPI_EXTENSION]).toEqual({
      entry: true,
      v: SERVICES_PROTOCOL_VERSION,
      meta: { summary: 'My Service', description: 'Not so agentic example service.', tags: ['Test'], version: '1.0.0', author: 'you@example.com', organization: '' },
      elements: myModel.elements,
    });
    expect(op.post.requestBody.content['application/json'].schema.properties.tasks).toEqual({ title: 'Number of Tasks', default: '25', type: 'string' });
    expect(doc.paths['/-/typed'].post.requestBody.content['application/json'].schema.properties.tasks).toMatchObject({ type: 'integer', maximum: 10 });
  });

  test('a user header signed with the cluster secret names the user; a forged one names nobody', async () => {
    const claim = { user: 'ada', admin: false, iat: Date.now() };
    await post('/-/', '{"tasks": 1}', 'application/json', { [USER_HEADER]: signUser(SECRET, claim) });
    await post('/-/', '{"tasks": 1}', 'application/json', { [USER_HEADER]: signUser('another-secret', { ...claim, admin: true }) });
    await post('/-/', '{"tasks": 1}', 'application/json', { [USER_HEADER]: Buffer.from(JSON.stringify(claim)).toString('base64url') });
    expect(calls.map((c) => c.request.user)).toEqual([claim, undefined, undefined]);
  });

  test('the secret is looked up only when a user header is present', async () => {
    await post('/-/', '{"tasks": 1}', 'application/json');
    expect(secretLookups).toBe(0);
    expect(calls[0].request.user).toBeUndefined();
  });

  test('a zod model validates with the schema and gives the handler its typed output', async () => {
    let res = await post('/-/typed', 'name=ada', 'application/x-www-form-urlencoded');
    expect(await res.json()).toEqual({ tasks: 6, name: 'ADA' });
    expect(calls[0].inputs).toEqual({ tasks: 3, name: 'ada' });
    res = await post('/-/typed', JSON.stringify({ tasks: 11 }), 'application/json');
    expect(await res.json()).toEqual({ errors: { tasks: ['Must be at most 10.'], name: ['This field is required.'] } });
    expect(calls).toHaveLength(1);
  });

  test('an unknown path answers 404 in JSON, listing the entry points', async () => {
    const res = await fetch(`${url}/-/nope`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toMatch(/entry points: \/-\/, \/-\/checked/);
  });

  test('listen logs where the service and its openapi.json are', () => {
    expect(log).toHaveBeenCalledWith(`ServeAPI listening on ${url} (openapi: ${url}/openapi.json)`);
  });
});

describe('ServeAPI lifecycle', () => {
  test('a user secret lookup that fails (no cluster) leaves the user undefined', async () => {
    const app = new ServeAPI({ userSecret: () => Promise.reject(new Error('no cluster')) });
    let seen: unknown = 'unset';
    app.enter({ path: '/', model: [], summary: 'S' }, (request) => (seen = request.user) ?? null);
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    const server = await app.listen({ port: 0 });
    try {
      await fetch(`${server.url}/-/`, { method: 'POST', headers: { [USER_HEADER]: signUser('x', { user: 'a', admin: false, iat: Date.now() }) } });
      expect(seen).toBeUndefined();
    } finally {
      await server.close();
      log.mockRestore();
    }
  });

  test('options and entries that cannot work are refused, saying what to write', () => {
    expect(() => new ServeAPI({ port: 3 } as never)).toThrow(/no option port; its options are title/);
    const app = new ServeAPI();
    expect(() => app.enter({ path: 'x', model: [], summary: 'S' }, () => null)).toThrow(/path of plain segments starting with '\/'/);
    app.enter({ path: '/a', model: [], summary: 'S' }, () => null);
    expect(() => app.enter({ path: '/a', model: [], summary: 'S' }, () => null)).toThrow(/Two entry points have the path '\/a'/);
  });

  test('SIGTERM closes a listening service and its process exits within 5 s', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nodus-serve-'));
    const script = join(dir, 'service.ts');
    writeFileSync(
      script,
      `import { ServeAPI } from ${JSON.stringify(resolve(__dirname, '../../serve'))};\n` +
        `void new ServeAPI().listen({ port: 0 });\n` +
        // Something that would keep the process alive forever: the exit must come from the signal handler.
        `setInterval(() => undefined, 60_000);\n`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: resolve(__dirname, '../..'), stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((ok) => child.on('exit', ok));
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    try {
      await new Promise<void>((ok, fail) => {
        const t = setTimeout(() => fail(new Error(`no listening line in time:\n${out}`)), 30_000);
        child.stdout.on('data', () => out.includes('ServeAPI listening on') && (clearTimeout(t), ok()));
      });
      const t0 = Date.now();
      child.kill('SIGTERM');
      const code = await exited;
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(code).toBe(0);
      expect(out).toMatch(/ServeAPI listening on http:\/\/127\.0\.0\.1:\d+ \(openapi: http:\/\/127\.0\.0\.1:\d+\/openapi\.json\)/);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
