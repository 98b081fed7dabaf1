/** @module Passwords (scrypt), session tokens (HMAC-SHA256 with the cluster's secret) and API keys (kept as sha256). */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { openJson, signJson } from '../../runtime/protocol/services';

const KEY_LEN = 64;

function scryptAsync(password: string, salt: Buffer): Promise<Buffer> {
  // Asynchronous: a login must not stall every other request for the ~50 ms scrypt takes.
  return new Promise((res, rej) => scrypt(password, salt, KEY_LEN, (err, key) => (err ? rej(err) : res(key))));
}

/** `scrypt$<salt hex>$<hash hex>`, as GatewayUser.password holds it. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  return `scrypt$${salt.toString('hex')}$${(await scryptAsync(password, salt)).toString('hex')}`;
}

/** A hash no password matches, checked when the user does not exist so that both failures take as long. */
export const NO_USER_HASH = `scrypt$${'00'.repeat(16)}$${'00'.repeat(KEY_LEN)}`;

/** True when `password` matches `stored` (compared in constant time). */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'hex');
  const got = await scryptAsync(password, Buffer.from(salt, 'hex'));
  return got.length === expected.length && timingSafeEqual(got, expected);
}

/** A session token for `user` until `expiresAt` (ms): `base64url(JSON).signature`. */
export function signSession(secret: string, user: string, expiresAt: number): string {
  return signJson(secret, 'session', { u: user, exp: expiresAt });
}

/** The user of a session token, or undefined when it is missing, forged or expired. */
export function verifySession(secret: string, token: string | undefined, now = Date.now()): string | undefined {
  const { u, exp } = (openJson(secret, 'session', token) ?? {}) as { u?: unknown; exp?: unknown };
  return typeof u === 'string' && typeof exp === 'number' && exp > now ? u : undefined;
}

/** A new API key: shown to its user once, kept only as its sha256. */
export function newApiKey(): string {
  return `nodus_${randomBytes(24).toString('base64url')}`;
}

/** How an API key is kept in Redis. A fast hash is enough: the key is random, not a password. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}
