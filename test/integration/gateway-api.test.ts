/** @module The gateway over real HTTP against a real Redis: login, API keys, flows and the proxy, outputs and event streams. */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import pino from 'pino';
import { startGateway, type Gateway } from '../../gateway/gateway';
import { freePort, startRedisServer, stopProcess } from '../../runtime/internal/launcher';
import { connect } from '../../runtime/internal/redis';
import { ServiceKeys, USER_HEADER, verifyUser, type ExecStatus } from '../../runtime/protocol/services';
import { appendEvents, createExecution, setStatus } from '../../serve/store';

const quiet = pino({ level: 'silent' });
let redisPid: number;
let address: string;
let redis: Redis;
let dir: string;
let gw: Gateway;
let keys: ServiceKeys;
let service: Server;
let servicePort: number;
let admin: string; // cookie header value

// ---------------------------------------------------------------- helpers

/** A stand-in agentic service: an openapi.json with one x-nodus entry at /-/, a form, and a POST that echoes what it got. */
function startService(): Promise<Server> {
  const entry = {
    entry: true,
    v: 1,
    meta: { summary: 'Calculator', description: 'Adds numbers slowly', tags: ['Test', 'Math'], version: '1.0.0', author: 'a@b.c', organization: 'ACME' },
    elements: [{ type: 'number', name: 'tasks', label: 'Tasks', value: 25 }, { type: 'submit', text: 'Go' }],
  };
  const read = (req: IncomingMessage) => new Promise<string>((res) => {
    let s = '';
    req.on('data', (c: Buffer) => (s += c.toString()));
    req.on('end', () => res(s));
  });
  const srv = createServer(async (req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url === '/openapi.json') return send(200, { openapi: '3.1.0', info: { title: 'calc', version: '1.0.0' }, paths: { '/-/': { get: { summary: 'form' }, post: { summary: 'Calculator', 'x-nodus': entry } } } });
    if (req.url === '/-/routes') return send(200, { '/': 'calc' });
    if (req.url === '/-/' && req.method === 'GET') return send(200, { meta: entry.meta, elements: entry.elements });
    if (req.url === '/-/' && req.method === 'POST') return send(200, { headers: req.headers, body: await read(req) });
    send(404, { detail: 'Not Found' });
  });
  return new Promise((res) => srv.listen(0, '127.0.0.1', () => res(srv)));
}

async function call(path: string, o: { cookie?: string; method?: string; body?: string | object; headers?: Record<string, string>; base?: string } = {}) {
  const headers: Record<string, string> = { ...o.headers };
  if (o.cookie) headers.cookie = o.cookie;
  let body: string | undefined;
  if (typeof o.body === 'object') {
    body = JSON.stringify(o.body);
    headers['content-type'] ??= 'application/json';
  } else body = o.body;
  const res = await fetch(`${o.base ?? gw.url}${path}`, { method: o.method ?? (body === undefined ? 'GET' : 'POST'), headers, body });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

async function login(name: string, password: string, base?: string): Promise<string> {
  const r = await call('/api/login', { body: { name, password }, base });
  expect(r.status).toBe(200);
  return r.headers.get('set-cookie')!.split(';')[0];
}

async function addUser(name: string): Promise<string> {
  const r = await call('/api/users', { cookie: admin, body: { name, password: `${name}-password` } });
  expect([201, 409]).toContain(r.status);
  return login(name, `${name}-password`);
}

function newFid(): string {
  return `f${randomBytes(6).toString('hex')}`;
}

async function newExecution(owner: string, o: { summary?: string; flow?: string } = {}): Promise<string> {
  const fid = newFid();
  await createExecution(redis, keys, { fid, owner, flow: o.flow ?? 'flow1', summary: o.summary ?? 'Calculator', entry: '/x.js:run', inputs: { tasks: 3 }, service: 'http://127.0.0.1:1' });
  return fid;
}

interface SseEvent {
  id?: string;
  event?: string;
  data: string;
}

/** Reads an event stream as it arrives. */
function openStream(fid: string, cookie: string, lastEventId?: string) {
  const ac = new AbortController();
  const events: SseEvent[] = [];
  const comments: string[] = [];
  let status = 0;
  let headers = new Headers();
  let waiters: (() => void)[] = [];
  const notify = () => {
    const w = waiters;
    waiters = [];
    w.forEach((f) => f());
  };
  const done = (async () => {
    const res = await fetch(`${gw.url}/outputs/stream/${fid}`, { headers: { cookie, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) }, signal: ac.signal });
    status = res.status;
    headers = res.headers;
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = '';
    try {
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const e: SseEvent = { data: '' };
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line);
            else if (line.startsWith('id: ')) e.id = line.slice(4);
            else if (line.startsWith('event: ')) e.event = line.slice(7);
            else if (line.startsWith('data: ')) e.data += line.slice(6);
          }
          if (e.event) events.push(e);
        }
        notify();
      }
    } catch {
      // aborted
    }
    notify();
    return 'ended' as const;
  })();
  return {
    events,
    comments,
    get status() {
      return status;
    },
    get headers() {
      return headers;
    },
    done,
    close: () => ac.abort(),
    /** Waits until `pred` holds (or fails after 5 s). */
    async until(pred: () => boolean, what: string): Promise<void> {
      const deadline = Date.now() + 5000;
      while (!pred()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(events.map((e) => e.event))}`);
        await Promise.race([new Promise<void>((r) => waiters.push(r)), new Promise((r) => setTimeout(r, 100))]);
      }
    },
  };
}

// ---------------------------------------------------------------- setup

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nodus-gw-'));
  const r = await startRedisServer({ port: await freePort(), dir, detached: false });
  redisPid = r.pid;
  address = r.address;
  redis = connect(address, { name: 'test' });
  keys = new ServiceKeys('gwtest');
  gw = await startGateway({ address, namespace: 'gwtest', port: 0, maxBodyBytes: 64 * 1024 }, { logger: quiet });
  service = await startService();
  servicePort = (service.address() as AddressInfo).port;
  admin = await login('admin', 'admin');
});

afterAll(async () => {
  await gw?.close();
  await new Promise((r) => service?.close(r));
  redis?.disconnect();
  if (redisPid) await stopProcess(redisPid);
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- auth

describe('login and sessions', () => {
  test("the seed's curl login (JSON sent with a form content-type) sets an HttpOnly session cookie that then authenticates", async () => {
    const res = await fetch(`${gw.url}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: '{"name": "admin", "password": "admin"}',
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ name: 'admin', admin: true });
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^nodus_session=[^;]+;/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(cookie).toMatch(/Path=\//);
    const me = await call('/api/me', { cookie: cookie.split(';')[0] });
    expect(me.json).toEqual({ name: 'admin', admin: true });
    const anonymous = await call('/api/me');
    expect(anonymous.status).toBe(401);
    expect(anonymous.json).toMatchObject({ statusCode: 401, error: 'Unauthorized' });
  });

  test('a login as a form works too, and logout clears the cookie', async () => {
    const r = await call('/api/login', { body: 'name=admin&password=admin', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(r.status).toBe(200);
    const out = await call('/logout', { cookie: r.headers.get('set-cookie')!.split(';')[0] });
    expect(out.status).toBe(200);
    expect(out.headers.get('set-cookie')).toMatch(/nodus_session=;/);
  });

  test('a forged or tampered session cookie is refused', async () => {
    const [payload, sig] = admin.slice('nodus_session='.length).split('.');
    const other = Buffer.from(JSON.stringify({ u: 'admin', exp: Date.now() + 1e9 })).toString('base64url');
    expect((await call('/api/me', { cookie: `nodus_session=${other}.${sig}` })).status).toBe(401);
    expect((await call('/api/me', { cookie: `nodus_session=${payload}.x${sig.slice(1)}` })).status).toBe(401);
  });

  test('wrong credentials get one 401 message, and the sixth failure in a minute gets 429 with Retry-After even with the right password', async () => {
    const wrongPassword = await call('/api/login', { body: { name: 'admin', password: 'nope' } });
    const noSuchUser = await call('/api/login', { body: { name: 'nobody', password: 'admin' } });
    expect(wrongPassword.status).toBe(401);
    expect(noSuchUser.status).toBe(401);
    expect(wrongPassword.json.message).toBe(noSuchUser.json.message);
    for (let i = 0; i < 3; i++) expect((await call('/api/login', { body: { name: 'admin', password: 'nope' } })).status).toBe(401);
    const limited = await call('/api/login', { body: { name: 'admin', password: 'admin' } });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.json).toMatchObject({ statusCode: 429, error: 'Too Many Requests' });
    // Free this client address for the other tests.
    for (const k of await redis.keys('gwtest:gw:loginfail:*')) await redis.del(k);
  });

  test('an API key authenticates in place of the cookie and is kept only as a hash', async () => {
    const r = await call('/api/keys', { cookie: admin, method: 'POST' });
    expect(r.status).toBe(201);
    const key: string = r.json.key;
    const me = await call('/api/me', { headers: { 'x-nodus-api-key': key } });
    expect(me.json).toEqual({ name: 'admin', admin: true });
    expect((await call('/api/me', { headers: { 'x-nodus-api-key': `${key}x` } })).status).toBe(401);
    const stored = await redis.hgetall(keys.apiKeys);
    expect(Object.keys(stored)).not.toContain(key);
    expect(JSON.stringify(stored)).not.toContain(key);
  });

  test('only admins add users, and passwords are stored as scrypt hashes', async () => {
    const bob = await addUser('bob');
    const r = await call('/api/users', { cookie: bob, body: { name: 'eve', password: 'eve-password' } });
    expect(r.status).toBe(403);
    expect(JSON.parse((await redis.hget(keys.users, 'bob'))!).password).toMatch(/^scrypt\$[0-9a-f]{32}\$[0-9a-f]{128}$/);
  });
});

// ---------------------------------------------------------------- flows and proxy

describe('flows and the proxy', () => {
  const openapi = () => `http://127.0.0.1:${servicePort}/openapi.json`;

  beforeAll(async () => {
    const r = await call('/flow/register', { cookie: admin, body: { url: openapi() } });
    expect(r.status).toBe(200);
  });

  test('a registered service lists its entry point with the gateway URL, searchable by words and tag', async () => {
    const flows = (await call('/flow', { cookie: admin })).json;
    expect(flows).toHaveLength(1);
    expect(flows[0]).toMatchObject({
      method: 'POST',
      path: '/-/',
      url: `/-/127.0.0.1/${servicePort}/-/`,
      base: `http://127.0.0.1:${servicePort}`,
      source: openapi(),
      summary: 'Calculator',
      tags: ['Test', 'Math'],
      author: 'a@b.c',
      organization: 'ACME',
      version: '1.0.0',
    });
    expect(flows[0].uid).toMatch(/^[0-9a-f]{12}$/);
    expect((await call('/flow?q=adds%20slowly', { cookie: admin })).json).toHaveLength(1);
    expect((await call('/flow?q=weather', { cookie: admin })).json).toHaveLength(0);
    expect((await call('/flow?tag=math', { cookie: admin })).json).toHaveLength(1);
    expect((await call('/flow?tag=other', { cookie: admin })).json).toHaveLength(0);
  });

  test('registrations survive a gateway restart, and a session from one gateway works at another of the same cluster', async () => {
    const second = await startGateway({ address, namespace: 'gwtest', port: 0 }, { logger: quiet });
    try {
      const flows = (await call('/flow', { cookie: admin, base: second.url })).json;
      expect(flows.map((f: any) => f.summary)).toEqual(['Calculator']);
    } finally {
      await second.close();
    }
  });

  test('a /-/routes listing registers every service it names (an entry found twice is listed once)', async () => {
    const r = await call('/flow/register', { cookie: admin, body: { url: `http://127.0.0.1:${servicePort}/-/routes` } });
    expect(r.status).toBe(200);
    expect(r.json.flows).toHaveLength(1);
    expect((await call('/flow', { cookie: admin })).json).toHaveLength(1);
    const del = await call('/flow/register', { cookie: admin, method: 'DELETE', body: { url: `http://127.0.0.1:${servicePort}/-/routes` } });
    expect(del.status).toBe(200);
  });

  test('registering an unreachable URL answers 502 naming it, and only admins may register', async () => {
    const url = `http://127.0.0.1:${await freePort()}/openapi.json`;
    const r = await call('/flow/register', { cookie: admin, body: { url } });
    expect(r.status).toBe(502);
    expect(r.json.message).toContain(url);
    const bob = await addUser('bob');
    expect((await call('/flow/register', { cookie: bob, body: { url: openapi() } })).status).toBe(403);
  });

  test('the proxy serves the form and forwards a launch with a signed user header, dropping a forged one and the cookie', async () => {
    const form = await call(`/-/127.0.0.1/${servicePort}/-/`, { cookie: admin });
    expect(form.status).toBe(200);
    expect(form.json.elements[0]).toMatchObject({ type: 'number', name: 'tasks' });
    const bob = await addUser('bob');
    // curl -d '{"tasks": 100}': JSON with a form content-type.
    const r = await call(`/-/127.0.0.1/${servicePort}/-/`, {
      cookie: bob,
      body: '{"tasks": 100}',
      headers: { 'content-type': 'application/x-www-form-urlencoded', [USER_HEADER]: 'forged.signature' },
    });
    expect(r.status).toBe(200);
    const secret = (await redis.get(keys.secret))!;
    expect(secret).toMatch(/^[0-9a-f]{64}$/);
    expect(verifyUser(secret, r.json.headers[USER_HEADER])).toMatchObject({ user: 'bob', admin: false });
    expect(r.json.headers['content-type']).toBe('application/json');
    expect(r.json.headers.cookie).toBeUndefined();
    expect(JSON.parse(r.json.body)).toEqual({ tasks: 100 });
  });

  test('the proxy refuses a target that is not a registered service, and anyone not logged in', async () => {
    const r = await call(`/-/127.0.0.1/${await freePort()}/-/`, { cookie: admin, body: { tasks: 1 } });
    expect(r.status).toBe(403);
    expect(r.json.message).toMatch(/not a registered service; register it with POST \/flow\/register/);
    expect((await call(`/-/127.0.0.1/${servicePort}/-/`)).status).toBe(401);
    // A path that would resolve to another host stays on the service.
    const escape = await call(`/-/127.0.0.1/${servicePort}//example.invalid/x`, { cookie: admin });
    expect(escape.status).toBe(404);
    expect(escape.json).toEqual({ detail: 'Not Found' });
  });
});

// ---------------------------------------------------------------- admin password

describe('the admin password', () => {
  test("the default password 'admin' is refused off loopback, given or found in Redis", async () => {
    await expect(startGateway({ address, namespace: `ns${newFid()}`, host: '0.0.0.0', port: 0, adminPassword: 'admin' }, { logger: quiet })).rejects.toThrow(/--admin-password/);
    // gwtest's admin was made with the default password on loopback.
    await expect(startGateway({ address, namespace: 'gwtest', host: '0.0.0.0', port: 0 }, { logger: quiet })).rejects.toThrow(/default password 'admin'.*--admin-password/);
  });

  test('off loopback with no password given, a generated one is saved with mode 0600 and works', async () => {
    const sessionDir = join(dir, 'session');
    const g = await startGateway({ address, namespace: `ns${newFid()}`, host: '0.0.0.0', port: 0, sessionDir }, { logger: quiet });
    try {
      const file = join(sessionDir, 'gateway_admin_password');
      expect(g.generatedPasswordFile).toBe(file);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const password = readFileSync(file, 'utf8').trim();
      expect(password.length).toBeGreaterThanOrEqual(20);
      await login('admin', password, `http://127.0.0.1:${g.port}`);
    } finally {
      await g.close();
    }
  });
});

// ---------------------------------------------------------------- outputs

describe('outputs', () => {
  test('an execution is visible to its owner and admins; to anyone else it does not exist', async () => {
    const bob = await addUser('bob');
    const carol = await addUser('carol');
    const fid = await newExecution('bob');
    expect((await call(`/outputs/status/${fid}`, { cookie: bob })).status).toBe(200);
    expect((await call(`/outputs/status/${fid}`, { cookie: admin })).status).toBe(200);
    for (const path of [`/outputs/status/${fid}`, `/outputs/main/${fid}`, `/outputs/stdio/${fid}`, `/outputs/stream/${fid}`]) {
      expect((await call(path, { cookie: carol })).status).toBe(404);
    }
    expect((await call(`/outputs/${fid}`, { cookie: carol, method: 'DELETE' })).status).toBe(404);
    expect((await call(`/outputs/status/${fid}x`, { cookie: bob })).status).toBe(404);
  });

  test('status gives numbers as numbers, the parsed inputs and the final result', async () => {
    const fid = await newExecution('admin');
    await setStatus(redis, keys, fid, 'running');
    await setStatus(redis, keys, fid, 'finished', { before: [{ kind: 'final', data: { total: 42 } }] });
    const s = (await call(`/outputs/status/${fid}`, { cookie: admin })).json;
    expect(s).toMatchObject({ fid, status: 'finished', owner: 'admin', summary: 'Calculator', flow: 'flow1', inputs: { tasks: 3 }, error: null, final: { total: 42 } });
    for (const k of ['createdAt', 'startedAt', 'endedAt']) expect(typeof s[k]).toBe('number');
  });

  test('main and stdio list only their kinds of events', async () => {
    const fid = await newExecution('admin');
    await appendEvents(redis, keys, fid, [
      { kind: 'markdown', data: '# hi' },
      { kind: 'stdout', data: 'out' },
      { kind: 'debug', data: 'dbg' },
      { kind: 'stderr', data: 'err' },
      { kind: 'result', data: { x: 1 } },
    ]);
    const main = (await call(`/outputs/main/${fid}`, { cookie: admin })).json;
    expect(main.events.map((e: any) => e.kind)).toEqual(['markdown', 'result']);
    const stdio = (await call(`/outputs/stdio/${fid}`, { cookie: admin })).json;
    expect(stdio.events.map((e: any) => [e.kind, e.data])).toEqual([['stdout', 'out'], ['stderr', 'err']]);
  });

  test('the event stream sends every event in order with ids, resumes after Last-Event-ID with exactly the rest, and ends with eof', async () => {
    const fid = await newExecution('admin');
    const first = openStream(fid, admin);
    await first.until(() => first.events.length >= 2, 'the starting status and inputs');
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(first.headers.get('cache-control')).toBe('no-cache');
    expect(first.headers.get('x-accel-buffering')).toBe('no');
    await setStatus(redis, keys, fid, 'running');
    await appendEvents(redis, keys, fid, [1, 2, 3].map((i) => ({ kind: 'markdown' as const, data: `step ${i}` })));
    await first.until(() => first.events.length >= 6, 'live events');
    expect(first.events.map((e) => e.event)).toEqual(['status', 'inputs', 'status', 'markdown', 'markdown', 'markdown']);
    expect(JSON.parse(first.events[3].data)).toMatchObject({ kind: 'markdown', data: 'step 1' });
    expect(typeof JSON.parse(first.events[3].data).at).toBe('number');
    first.close();
    await first.done;

    // Written while nobody listens, then more while the second reader catches up.
    await appendEvents(redis, keys, fid, [{ kind: 'text', data: 'while away' }]);
    const resumeAfter = first.events[3].id!;
    const second = openStream(fid, admin, resumeAfter);
    const writing = (async () => {
      for (let i = 0; i < 20; i++) await appendEvents(redis, keys, fid, [{ kind: 'stdout', data: `line ${i}` }]);
      await setStatus(redis, keys, fid, 'finished', { before: [{ kind: 'final', data: 'done' }] });
    })();
    await writing;
    expect(await second.done).toBe('ended');
    const all = (await redis.xrange(keys.events(fid), `(${resumeAfter}`, '+')).map(([id]) => id);
    const got = second.events.filter((e) => e.event !== 'eof');
    expect(got.map((e) => e.id)).toEqual(all);
    expect(second.events.at(-1)!.event).toBe('eof');
    expect(got.at(-1)).toMatchObject({ event: 'status' });
    expect(JSON.parse(got.at(-1)!.data).data).toEqual({ status: 'finished' });
  });

  test('a stream of an ended execution replays it and ends; one resumed after its last event gets eof at once', async () => {
    const fid = await newExecution('admin');
    await setStatus(redis, keys, fid, 'error', { before: [{ kind: 'error', data: { name: 'Error', message: 'boom', stack: 'Error: boom\n    at x' } }] });
    const s = openStream(fid, admin);
    await s.done;
    expect(s.events.map((e) => e.event)).toEqual(['status', 'inputs', 'error', 'status', 'eof']);
    const again = openStream(fid, admin, s.events[3].id);
    await again.done;
    expect(again.events.map((e) => e.event)).toEqual(['eof']);
  });

  test("an error event's stack reaches the owner only", async () => {
    const bob = await addUser('bob');
    const fid = await newExecution('bob');
    await setStatus(redis, keys, fid, 'error', { before: [{ kind: 'error', data: { name: 'Error', message: 'boom', stack: 'Error: boom\n    at x' } }] });
    const errorOf = async (cookie: string) => {
      const s = openStream(fid, cookie);
      await s.done;
      return JSON.parse(s.events.find((e) => e.event === 'error')!.data).data;
    };
    expect(await errorOf(bob)).toMatchObject({ message: 'boom', stack: expect.stringContaining('at x') });
    const seenByAdmin = await errorOf(admin);
    expect(seenByAdmin.message).toBe('boom');
    expect(seenByAdmin.stack).toBeUndefined();
  });

  test('many streams watched at once each get their own events live', async () => {
    const fids = await Promise.all(Array.from({ length: 12 }, () => newExecution('admin')));
    const streams = fids.map((fid) => openStream(fid, admin));
    await Promise.all(streams.map((s) => s.until(() => s.events.length >= 2, 'the start')));
    const t0 = Date.now();
    await Promise.all(fids.map((fid, i) => appendEvents(redis, keys, fid, [{ kind: 'text', data: `for ${i}` }])));
    await Promise.all(streams.map((s) => s.until(() => s.events.length >= 3, 'the live event')));
    expect(Date.now() - t0).toBeLessThan(1000);
    streams.forEach((s, i) => expect(JSON.parse(s.events[2].data).data).toBe(`for ${i}`));
    await Promise.all(fids.map((fid) => setStatus(redis, keys, fid, 'finished')));
    await Promise.all(streams.map((s) => s.done));
  });

  test('a quiet stream gets a ping comment every 3 s', async () => {
    const fid = await newExecution('admin');
    const s = openStream(fid, admin);
    await s.until(() => s.events.length >= 2, 'the start');
    const t0 = Date.now();
    await s.until(() => s.comments.includes(': ping'), 'a ping');
    expect(Date.now() - t0).toBeLessThan(3500);
    s.close();
    await s.done;
  });

  test('the timeline lists newest first with paging, searches summary, fid and flow, filters by status, and shows users only their own', async () => {
    const dave = await addUser('dave');
    const fids: string[] = [];
    for (let i = 0; i < 5; i++) {
      fids.push(await newExecution('dave', { summary: i % 2 ? 'Weather report' : 'Prime sieve', flow: `flow-${i}` }));
      await new Promise((r) => setTimeout(r, 2)); // distinct creation times
    }
    await setStatus(redis, keys, fids[0], 'running');
    await newExecution('bob');
    const page = (await call('/timeline?offset=1&limit=2', { cookie: dave })).json;
    expect(page).toMatchObject({ total: 5, offset: 1, limit: 2 });
    expect(page.items.map((i: any) => i.fid)).toEqual([fids[3], fids[2]]);
    expect(page.items.every((i: any) => typeof i.createdAt === 'number')).toBe(true);
    expect((await call('/timeline?q=weather', { cookie: dave })).json.items.map((i: any) => i.fid)).toEqual([fids[3], fids[1]]);
    expect((await call(`/timeline?q=${fids[2]}`, { cookie: dave })).json.total).toBe(1);
    expect((await call('/timeline?q=flow-4', { cookie: dave })).json.items.map((i: any) => i.fid)).toEqual([fids[4]]);
    expect((await call('/timeline?status=running', { cookie: dave })).json.items.map((i: any) => i.fid)).toEqual([fids[0]]);
    expect((await call('/timeline?limit=0', { cookie: dave })).status).toBe(400);
    expect((await call('/timeline?status=bogus', { cookie: dave })).status).toBe(400);
    // An admin sees everyone's.
    expect((await call('/timeline?limit=200', { cookie: admin })).json.items.some((i: any) => i.owner === 'bob')).toBe(true);
  });

  test('cancelling an execution whose runner does not answer ends it cancelled within 2 s; cancelling again answers 409', async () => {
    const fid = await newExecution('admin');
    await setStatus(redis, keys, fid, 'running');
    const t0 = Date.now();
    const r = await call(`/outputs/${fid}`, { cookie: admin, method: 'DELETE' });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(r.json).toEqual({ fid, status: 'cancelled' });
    expect(await redis.hget(keys.exec(fid), 'status')).toBe('cancelled');
    const again = await call(`/outputs/${fid}`, { cookie: admin, method: 'DELETE' });
    expect(again.status).toBe(409);
    expect(again.json).toMatchObject({ statusCode: 409, status: 'cancelled' });
  });

  test('a runner that ends the execution itself when asked is not killed: its status stands', async () => {
    const fid = await newExecution('admin');
    await setStatus(redis, keys, fid, 'running');
    // Plays the runner: on the cancel message, it ends the execution cancelled.
    const sub = connect(address, { name: 'test-runner' });
    await sub.subscribe(keys.cancelChannel);
    sub.on('message', (_c, f) => void (f === fid && setStatus(redis, keys, fid, 'cancelled' as ExecStatus as 'cancelled', { message: 'runner stopped' })));
    try {
      const r = await call(`/outputs/${fid}`, { cookie: admin, method: 'DELETE' });
      expect(r.json).toEqual({ fid, status: 'cancelled' });
      expect(await redis.hget(keys.exec(fid), 'error')).toBe('runner stopped');
    } finally {
      sub.disconnect();
    }
  });
});

// ---------------------------------------------------------------- bodies and errors

describe('bodies and errors', () => {
  test('a body over maxBodyBytes gets 413 and malformed JSON sent as JSON gets 400 with the reason, both as JSON errors', async () => {
    const big = await call('/api/login', { body: JSON.stringify({ name: 'admin', password: 'x'.repeat(100 * 1024) }), headers: { 'content-type': 'application/json' } });
    expect(big.status).toBe(413);
    expect(big.json).toMatchObject({ statusCode: 413, error: 'Payload Too Large' });
    const bad = await call('/flow/register', { cookie: admin, body: '{"url": ', headers: { 'content-type': 'application/json' } });
    expect(bad.status).toBe(400);
    expect(bad.json.message).toMatch(/not valid JSON/);
    const missing = await call('/flow/register', { cookie: admin, body: {} });
    expect(missing.status).toBe(400);
    expect(missing.json.message).toMatch(/url/);
  });

  test('health and the API document need no login; an unknown route is a JSON 404', async () => {
    expect((await call('/health')).json).toEqual({ status: 'ok', redis: 'ok' });
    const doc = (await call('/openapi.json')).json;
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/login', '/flow', '/outputs/stream/{fid}', '/timeline']));
    const nf = await call('/nothing-here', { cookie: admin });
    expect(nf.status).toBe(404);
    expect(nf.json).toMatchObject({ statusCode: 404, error: 'Not Found' });
  });
});
