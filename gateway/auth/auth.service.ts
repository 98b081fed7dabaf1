/** @module Users, logins, sessions and API keys, all in the cluster's Redis so that every gateway of a cluster agrees. */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConflictException, Injectable, UnauthorizedException, type OnModuleInit } from '@nestjs/common';
import type { Request } from 'express';
import { ConfigError } from '../../runtime/errors';
import type { GatewayUser } from '../../runtime/protocol/services';
import { GatewayContext } from '../common/context';
import { HttpError } from '../common/errors';
import { NO_USER_HASH, hashApiKey, hashPassword, newApiKey, signSession, verifyPassword, verifySession } from './crypto';
import type { AuthUser } from './decorators';

/** A user as stored: GatewayUser, plus whether the password is still the well-known default. */
interface StoredUser extends GatewayUser {
  defaultPassword?: boolean;
}

/** The cookie that holds a session token. */
export const SESSION_COOKIE = 'nodus_session';
/** The header an API key comes in, instead of the cookie. */
export const API_KEY_HEADER = 'x-nodus-api-key';
/** The user made at a cluster's first start. */
export const ADMIN_USER = 'admin';
const DEFAULT_PASSWORD = 'admin';
/** Failed logins allowed per client address and window before 429. */
const LOGIN_LIMIT = 5;
const LOGIN_WINDOW_MS = 60_000;
/** The one answer to a bad login: it must not tell whether the name or the password was wrong. */
const BAD_LOGIN = 'Wrong user name or password.';

/** Users and their credentials: the admin at start, logins (rate-limited), sessions, API keys, new users. */
@Injectable()
export class AuthService implements OnModuleInit {
  /** The file holding the admin password generated at this start, if one was. */
  generatedPasswordFile: string | undefined;

  constructor(private readonly gw: GatewayContext) {}

  /** At start: makes sure an admin exists, and refuses to serve other machines with the default password. */
  async onModuleInit(): Promise<void> {
    const { adminPassword, loopback, host, sessionDir } = this.gw.options;
    const log = this.gw.logger;
    const { redis, keys } = this.gw;
    if (adminPassword !== undefined) {
      const existing = await this.getUser(ADMIN_USER);
      await this.putUser({
        name: ADMIN_USER,
        password: await hashPassword(adminPassword),
        admin: true,
        createdAt: existing?.createdAt ?? Date.now(),
        ...(adminPassword === DEFAULT_PASSWORD ? { defaultPassword: true } : {}),
      });
    } else if ((await redis.hlen(keys.users)) === 0) {
      const generated = loopback ? undefined : randomBytes(18).toString('base64url');
      const user: StoredUser = {
        name: ADMIN_USER,
        password: await hashPassword(generated ?? DEFAULT_PASSWORD),
        admin: true,
        createdAt: Date.now(),
        ...(generated ? {} : { defaultPassword: true }),
      };
      // HSETNX: of two gateways starting at once on a fresh cluster, one makes the admin.
      if (await redis.hsetnx(keys.users, ADMIN_USER, JSON.stringify(user))) {
        if (generated) {
          const file = join(sessionDir, 'gateway_admin_password');
          mkdirSync(sessionDir, { recursive: true, mode: 0o700 });
          writeFileSync(file, `${generated}\n`, { mode: 0o600 });
          chmodSync(file, 0o600);
          this.generatedPasswordFile = file;
          log.warn({ file }, `created user admin with the generated password ${generated} (saved in ${file}); it is not shown again`);
        } else {
          log.warn("created user admin with password 'admin': fine on this machine only; set a real one with --admin-password");
        }
      }
    }
    const admin = await this.getUser(ADMIN_USER);
    if (admin?.defaultPassword && !loopback) {
      throw new ConfigError(
        `The gateway would listen on ${host}, where other machines reach it, while user admin has the default password 'admin'. ` +
          'Start it with --admin-password <a strong password> (option adminPassword), or listen on 127.0.0.1.',
      );
    }
  }

  private async getUser(name: string): Promise<StoredUser | undefined> {
    const json = await this.gw.redis.hget(this.gw.keys.users, name);
    return json ? (JSON.parse(json) as StoredUser) : undefined;
  }

  private async putUser(user: StoredUser): Promise<void> {
    await this.gw.redis.hset(this.gw.keys.users, user.name, JSON.stringify(user));
  }

  /**
   * Checks a login. Failures count per client address in Redis; past LOGIN_LIMIT in a window every login from there
   * gets 429 with Retry-After, right or wrong, until the window ends.
   */
  async login(name: string, password: string, client: string): Promise<{ user: AuthUser; token: string; expiresAt: number }> {
    const { redis, keys } = this.gw;
    const counter = keys.loginFailures(client);
    const failures = Number((await redis.get(counter)) ?? 0);
    if (failures >= LOGIN_LIMIT) {
      const wait = Math.max(1, Math.ceil((await redis.pttl(counter)) / 1000));
      throw new HttpError(429, `Too many failed logins from this address; try again in ${wait} s.`, { headers: { 'Retry-After': String(wait) } });
    }
    const user = await this.getUser(name);
    const ok = await verifyPassword(password, user?.password ?? NO_USER_HASH);
    if (!user || !ok) {
      await redis.multi().incr(counter).pexpire(counter, LOGIN_WINDOW_MS, 'NX').exec();
      throw new UnauthorizedException(BAD_LOGIN);
    }
    await redis.del(counter);
    const expiresAt = Date.now() + this.gw.options.sessionTtlMs;
    return { user: { name: user.name, admin: user.admin }, token: signSession(this.gw.secret, user.name, expiresAt), expiresAt };
  }

  /** The user a request comes from (session cookie or API key), or undefined. The admin flag is read fresh each time. */
  async userOf(req: Request): Promise<AuthUser | undefined> {
    const cookies = (req as Request & { cookies?: Record<string, string> }).cookies ?? {};
    let name = verifySession(this.gw.secret, cookies[SESSION_COOKIE]);
    const key = req.headers[API_KEY_HEADER];
    if (!name && typeof key === 'string' && key) name = (await this.gw.redis.hget(this.gw.keys.apiKeys, hashApiKey(key))) ?? undefined;
    if (!name) return undefined;
    // A deleted user's sessions and keys stop working at once.
    const user = await this.getUser(name);
    return user ? { name: user.name, admin: user.admin } : undefined;
  }

  /** A new API key for `user`; only its hash is kept, so this is the one time it is seen. */
  async createApiKey(user: string): Promise<string> {
    const key = newApiKey();
    await this.gw.redis.hset(this.gw.keys.apiKeys, hashApiKey(key), user);
    return key;
  }

  /** Adds a user; 409 if the name is taken. */
  async createUser(name: string, password: string, admin: boolean): Promise<AuthUser> {
    const user: StoredUser = { name, password: await hashPassword(password), admin, createdAt: Date.now() };
    if (!(await this.gw.redis.hsetnx(this.gw.keys.users, name, JSON.stringify(user)))) throw new ConflictException(`User ${name} exists already.`);
    return { name, admin };
  }
}
