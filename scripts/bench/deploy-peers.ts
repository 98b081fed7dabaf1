/**
 * @module The deploy section's peers, each in a process of its own as the ingress is: the same trivial handler on bare
 * Fastify or on bare NestJS (express). `node deploy-peers.js fastify|nest`: listens on a free loopback port, sends
 * `{ port }` to its parent, and exits on SIGTERM or when its parent goes.
 */
import 'reflect-metadata';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import Fastify from 'fastify';

@Controller()
class OkController {
  @Get()
  ok(): { ok: boolean } {
    return { ok: true };
  }
}

@Module({ controllers: [OkController] })
class OkModule {}

async function main(): Promise<void> {
  const kind = process.argv[2];
  let port: number;
  if (kind === 'fastify') {
    const app = Fastify({ logger: false });
    app.get('/', async () => ({ ok: true }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = (app.server.address() as { port: number }).port;
  } else if (kind === 'nest') {
    const app = await NestFactory.create(OkModule, { logger: false });
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as { port: number }).port;
  } else throw new Error(`deploy-peers takes fastify or nest, got ${kind}`);
  process.send?.({ port });
}

process.on('SIGTERM', () => process.exit(0));
process.on('disconnect', () => process.exit(0));
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
