/** @module The gateway's options: one interface with its defaults and one resolve function that checks them. */
import { isAbsolute } from 'node:path';
import { ConfigError } from '../runtime/errors';
import { rejectUnknownKeys } from '../runtime/options';
import { DEFAULT_PREFIX } from '../runtime/protocol';
import { sessionDir } from '../runtime/internal/session';
import { retentionMs } from '../serve/store';

/**
 * Options of the gateway (`startGateway()`, `nodus gateway` flags).
 *
 * @example
 * await startGateway({ address: 'redis://10.0.0.5:6379', host: '0.0.0.0', adminPassword: process.env.ADMIN_PW });
 */
export interface GatewayOptions {
  /** Redis URL of the cluster (`redis://` or `rediss://`, password included if any). Required. */
  address: string;
  /** Key prefix of the cluster, as given to init(). @default 'nodus' */
  namespace?: string;
  /** TCP port to listen on; 0 picks a free one. @default 3370 */
  port?: number;
  /** Interface to listen on. Anything but loopback needs a real admin password. @default '127.0.0.1' */
  host?: string;
  /** Service URLs (openapi.json or /-/routes) registered at start, like `POST /flow/register`. @default [] */
  register?: string[];
  /**
   * Password of the `admin` user; when given it is set at every start. Without it the first start creates `admin`
   * with password 'admin' on loopback, or a generated one (saved in `<sessionDir>/gateway_admin_password`) elsewhere.
   * @default none
   */
  adminPassword?: string;
  /** How long ended executions stay in the timelines' indexes, in ms. @default NODUS_EXEC_RETENTION_MS, else 7 days */
  retentionMs?: number;
  /** Largest request body accepted, in bytes (larger: 413). @default 1048576 (1 MiB) */
  maxBodyBytes?: number;
  /** How long a login session lasts, in ms. @default 43200000 (12 h) */
  sessionTtlMs?: number;
  /** Folder of the generated admin password file. @default NODUS_SESSION_DIR, else `<tmpdir>/nodus` */
  sessionDir?: string;
}

/** GatewayOptions with every default applied and checked. */
export interface ResolvedGatewayOptions {
  address: string;
  namespace: string;
  port: number;
  host: string;
  register: string[];
  adminPassword: string | undefined;
  retentionMs: number;
  maxBodyBytes: number;
  sessionTtlMs: number;
  sessionDir: string;
  /** True when `host` only accepts connections from this machine. */
  loopback: boolean;
}

const GATEWAY_OPTION_NAMES = [
  'address',
  'namespace',
  'port',
  'host',
  'register',
  'adminPassword',
  'retentionMs',
  'maxBodyBytes',
  'sessionTtlMs',
  'sessionDir',
] as const;

/** The port kodosumi's panel uses, kept so its docs' URLs work. */
export const DEFAULT_GATEWAY_PORT = 3370;

/** True for hosts only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function positive(name: string, v: unknown, dflt: number): number {
  const n = v ?? dflt;
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) throw new ConfigError(`${name} must be a number > 0, got ${JSON.stringify(v)}.`);
  return n;
}

/** Applies the defaults and checks every option; throws ConfigError saying what is wrong and what is valid. */
export function resolveGatewayOptions(options: GatewayOptions): ResolvedGatewayOptions {
  if (typeof options !== 'object' || options === null) throw new ConfigError('gateway options must be an object, e.g. { address: "redis://127.0.0.1:6379" }.');
  rejectUnknownKeys('gateway', options, GATEWAY_OPTION_NAMES);
  const o = options;
  if (typeof o.address !== 'string' || !/^rediss?:\/\//.test(o.address)) {
    throw new ConfigError(`address must be the cluster's Redis URL (redis://host:port or rediss://...), got ${JSON.stringify(o.address)}. \`nodus start\` prints it.`);
  }
  const namespace = o.namespace ?? DEFAULT_PREFIX;
  if (typeof namespace !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(namespace)) throw new ConfigError(`namespace must match [A-Za-z0-9_.-]+, got ${JSON.stringify(namespace)}.`);
  const port = o.port ?? DEFAULT_GATEWAY_PORT;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`port must be an integer from 0 to 65535, got ${String(o.port)}.`);
  const host = o.host ?? '127.0.0.1';
  if (typeof host !== 'string' || !host) throw new ConfigError(`host must be an interface address such as 127.0.0.1 or 0.0.0.0, got ${JSON.stringify(o.host)}.`);
  const register = o.register ?? [];
  if (!Array.isArray(register)) throw new ConfigError('register must be a list of service URLs (openapi.json or /-/routes).');
  for (const url of register) {
    if (typeof url !== 'string' || !/^https?:\/\/[^/]/.test(url)) throw new ConfigError(`register: ${JSON.stringify(url)} is not an http(s) URL; give e.g. http://localhost:8005/openapi.json.`);
  }
  if (o.adminPassword !== undefined && (typeof o.adminPassword !== 'string' || !o.adminPassword)) throw new ConfigError('adminPassword must be a non-empty string.');
  const dir = o.sessionDir ?? sessionDir();
  if (typeof dir !== 'string' || !isAbsolute(dir)) throw new ConfigError(`sessionDir must be an absolute path, got ${JSON.stringify(o.sessionDir)}.`);
  return {
    address: o.address,
    namespace,
    port,
    host,
    register: [...register],
    adminPassword: o.adminPassword,
    retentionMs: positive('retentionMs', o.retentionMs, retentionMs()),
    maxBodyBytes: Math.floor(positive('maxBodyBytes', o.maxBodyBytes, 1024 * 1024)),
    sessionTtlMs: positive('sessionTtlMs', o.sessionTtlMs, 12 * 3600 * 1000),
    sessionDir: dir,
    loopback: isLoopback(host),
  };
}
