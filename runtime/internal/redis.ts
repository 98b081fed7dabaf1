/** @module Redis connections: address parsing, connection options and a clear error when Redis cannot be reached. */
import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { ClusterError } from '../errors';
import { tlsCaFile } from './tls';

export interface ConnectOptions {
  /** Blocking commands (BLMPOP, BullMQ workers) need requests that never give up. */
  blocking?: boolean;
  name?: string;
  /** Send each command as it is made instead of gathering a tick's commands into one pipeline. @default blocking */
  direct?: boolean;
  /** Connect on the first command rather than at once, for a connection some processes never use. */
  lazy?: boolean;
  /** For rediss://: the CA file to trust (default: tlsCaFile(address)). */
  ca?: string;
}

/** Opens a connection to the cluster's Redis; `address` is a redis:// or rediss:// URL (password included if any). */
export function connect(address: string, opts: ConnectOptions = {}): Redis {
  const options: RedisOptions = {
    maxRetriesPerRequest: null,
    // Commands issued in the same tick go out as one pipeline: most of our hot paths issue several.
    enableAutoPipelining: !(opts.blocking || opts.direct),
    // Written at once, never gathered: a submission's result objects must reach Redis before its jobs,
    // which BullMQ writes at once (see Submitter.sendFirst).
    autoPipeliningIgnoredCommands: ['nodusCreate', 'nodusActorCreate'],
    lazyConnect: opts.lazy ?? false,
    connectionName: opts.name,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
    password: process.env.NODUS_PASSWORD || undefined,
  };
  const ca = address.startsWith('rediss://') ? (opts.ca ?? tlsCaFile(address)) : undefined;
  if (ca) options.tls = { ca: readFileSync(ca) };
  return new Redis(address, options);
}

/** nodus's scripts use Redis 7's script flags (allow-oom keeps control writes going when Redis is full). */
async function checkVersion(redis: Redis, address: string): Promise<void> {
  const version = /redis_version:(\S+)/.exec(await redis.info('server').catch(() => ''))?.[1];
  if (version && Number(version.split('.')[0]) < 7) {
    throw new ClusterError(`The cluster's Redis at ${redact(address)} is version ${version}; nodus needs Redis 7.0 or newer (apt-get install redis-server gives 7.0 on Debian 12).`);
  }
}

/** A TLS handshake this side refused: the server's certificate is not trusted here. */
const TLS_REFUSED = /certificate|self.signed|UNABLE_TO_VERIFY|ERR_TLS/i;

/** Waits until a connection answers PING, or fails with a message that says what to start. */
export async function waitForRedis(redis: Redis, address: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  // A refused TLS handshake shows on the connection, not on the command, which waits for a reconnect.
  let connError: Error | undefined;
  const onError = (err: Error) => (connError = err);
  redis.on('error', onError);
  try {
    while (Date.now() < deadline) {
      try {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([redis.ping(), new Promise((_, rej) => (timer = setTimeout(() => rej(new Error('no answer')), 1000)))]);
        } finally {
          clearTimeout(timer);
        }
        return await checkVersion(redis, address);
      } catch (err) {
        if (err instanceof ClusterError) throw err;
        lastError = err;
        if (/NOAUTH|WRONGPASS/.test(String(err)) || TLS_REFUSED.test(String(connError))) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    redis.off('error', onError);
  }
  if (connError && (lastError as Error | undefined)?.message === 'no answer') lastError = connError;
  if (/NOAUTH|WRONGPASS|invalid username-password/.test(String(lastError))) {
    throw new ClusterError(
      `The cluster's Redis at ${redact(address)} refused the ${/\/\/[^@/]*:[^@/]+@/.test(address) || process.env.NODUS_PASSWORD ? 'password given' : 'connection: it requires a password'}. ` +
        'Pass it in the address (redis://:PASSWORD@host:port) or in NODUS_PASSWORD; `nodus start` printed it and saved it in its session folder (redis_password).',
      { cause: lastError },
    );
  }
  if (TLS_REFUSED.test(String(lastError))) {
    throw new ClusterError(
      `The cluster's Redis at ${redact(address)} uses TLS, and its certificate is not trusted here (${(lastError as Error).message}). ` +
        'Set NODUS_TLS_CA (or give `worker join --tls-ca`) to the CA file of that cluster: `nodus start --tls` printed it (tls/ca.crt in its session folder); copy it to this machine.',
      { cause: lastError },
    );
  }
  throw new ClusterError(
    `Cannot reach the cluster's Redis at ${redact(address)} (${(lastError as Error)?.message ?? 'timeout'}). ` +
      'Is a cluster running there? Start one with `npx nodus start --head`, or call init() with no address to start a local one.',
    { cause: lastError },
  );
}

/** The address without its password, for messages. */
export function redact(address: string): string {
  return address.replace(/\/\/([^@/]*:)?[^@/]*@/, '//***@');
}
