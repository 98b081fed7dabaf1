/** @module Starts a gateway: the Nest application on express, listening, and everything it holds closed again by close(). */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter, type NestExpressApplication } from '@nestjs/platform-express';
import cookieParser from 'cookie-parser';
import type { Logger } from 'pino';
import { createLogger } from '../runtime/internal/logger';
import { AppModule } from './app.module';
import { AuthService } from './auth/auth.service';
import { GatewayContext } from './common/context';
import { acquireDriver, releaseDriver } from './common/driver';
import { ErrorFilter } from './common/error.filter';
import { NestPinoLogger } from './common/logger';
import type { Redis } from 'ioredis';
import { AppsService } from './apps/apps.service';
import { attachSession } from './apps/session';
import { resolveGatewayOptions, type GatewayOptions } from './config';

/** A running gateway. */
export interface Gateway {
  /** The port it listens on (the one picked when port 0 was asked). */
  port: number;
  host: string;
  /** `http://host:port` */
  url: string;
  /** The file with the admin password generated at this start (the cluster's first, off loopback), if one was. */
  generatedPasswordFile?: string;
  /** Its main connection to Redis, for the process's lifecycle to watch. */
  redis: Redis;
  /** Stops listening (open event streams end without eof, so clients resume elsewhere) and closes its connections. */
  close(): Promise<void>;
}

/** Redis calls made while closing are not worth waiting for when Redis is gone. */
function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]).finally(() => clearTimeout(timer));
}

/**
 * Starts the gateway of a cluster: login, registered flows and the proxy to their services, execution outputs and
 * event streams. Rejects with a ConfigError on bad options (or the default admin password off loopback) and a
 * ClusterError when Redis cannot be reached.
 *
 * @example
 * const gw = await startGateway({ address: 'redis://127.0.0.1:6379', register: ['http://localhost:8005/openapi.json'] });
 * console.log(gw.url);  // http://127.0.0.1:3370
 * await gw.close();
 */
export async function startGateway(options: GatewayOptions, deps: { logger?: Logger } = {}): Promise<Gateway> {
  const opts = resolveGatewayOptions(options);
  const logger = deps.logger ?? createLogger('nodus-gateway');
  const ctx = await GatewayContext.open(opts, logger);
  let app: NestExpressApplication | undefined;
  let driver = false;
  let sessions: { close(): void; clients: Set<{ terminate(): void }> } | undefined;
  try {
    await acquireDriver(opts.address, opts.namespace);
    driver = true;
    app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(ctx), new ExpressAdapter(), {
      // Bodies are read by BodyMiddleware (raw kept for the proxy, JSON whatever the content-type).
      bodyParser: false,
      // Nest's default is to exit the process on a start-up error; a library must reject instead.
      abortOnError: false,
      // Open event streams would hold server.close() forever.
      forceCloseConnections: true,
      logger: new NestPinoLogger(logger),
    });
    app.useGlobalFilters(new ErrorFilter(logger));
    app.use(cookieParser());
    app.disable('x-powered-by');
    sessions = attachSession(app.getHttpServer(), app.get(AuthService), app.get(AppsService));
    await app.listen(opts.port, opts.host);
  } catch (err) {
    await app?.close().catch(() => undefined);
    if (driver) await releaseDriver();
    await ctx.close();
    throw err;
  }
  const port = (app.getHttpServer().address() as AddressInfo).port;
  const url = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`;
  // Listed for `nodus status` and `nodus stop`.
  const id = `gw-${randomBytes(4).toString('hex')}`;
  await within(ctx.redis.hset(ctx.keys.gateways, id, JSON.stringify({ pid: process.pid, host: opts.host, port, hostname: hostname(), startedAt: Date.now() })), 1000).catch(() => undefined);
  const started = app;
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await within(ctx.redis.hdel(ctx.keys.gateways, id), 500).catch(() => undefined);
      for (const ws of sessions?.clients ?? []) ws.terminate();
      sessions?.close();
      await started.close().catch((err: unknown) => logger.warn({ err }, 'gateway: error while closing'));
      await within(releaseDriver(), 2000);
      await ctx.close();
    })());
  const generatedPasswordFile = app.get(AuthService).generatedPasswordFile;
  return { port, host: opts.host, url, redis: ctx.redis, ...(generatedPasswordFile ? { generatedPasswordFile } : {}), close };
}
