/** @module The gateway's plain parts without Redis: options, tokens and passwords, body parsing, stream id order. */
import { ConfigError } from '../../runtime/errors';
import { resolveGatewayOptions } from '../../gateway/config';
import { hashPassword, signSession, verifyPassword, verifySession } from '../../gateway/auth/crypto';
import { parseBody } from '../../gateway/common/body';
import { compareIds } from '../../gateway/outputs/event-hub';

const address = 'redis://127.0.0.1:6379';

describe('gateway options', () => {
  test('defaults are applied: port 3370 on loopback, 1 MiB bodies, 12 h sessions', () => {
    const o = resolveGatewayOptions({ address });
    expect(o).toMatchObject({ port: 3370, host: '127.0.0.1', namespace: 'nodus', register: [], maxBodyBytes: 1024 * 1024, sessionTtlMs: 12 * 3600 * 1000, loopback: true });
    expect(resolveGatewayOptions({ address, host: '0.0.0.0' }).loopback).toBe(false);
  });

  test('an unknown option is rejected with the closest valid name and the list of valid ones', () => {
    expect(() => resolveGatewayOptions({ address, adminPasword: 'x' } as never)).toThrow(/Unknown gateway option 'adminPasword'. Did you mean 'adminPassword'\? Valid options: address, namespace, port/);
  });

  test('bad values are rejected with a ConfigError saying what is valid', () => {
    expect(() => resolveGatewayOptions({} as never)).toThrow(ConfigError);
    expect(() => resolveGatewayOptions({ address: 'localhost:6379' })).toThrow(/redis:\/\//);
    expect(() => resolveGatewayOptions({ address, port: 70000 })).toThrow(/0 to 65535/);
    expect(() => resolveGatewayOptions({ address, register: ['localhost:8005'] })).toThrow(/not an http\(s\) URL/);
    expect(() => resolveGatewayOptions({ address, maxBodyBytes: 0 })).toThrow(/maxBodyBytes must be a number > 0/);
    expect(() => resolveGatewayOptions({ address, sessionDir: 'relative' })).toThrow(/absolute/);
  });
});

describe('gateway credentials', () => {
  test('a password matches its scrypt hash and nothing else', async () => {
    const hash = await hashPassword('s3cret');
    expect(hash).toMatch(/^scrypt\$/);
    expect(await verifyPassword('s3cret', hash)).toBe(true);
    expect(await verifyPassword('s3creT', hash)).toBe(false);
    expect(await verifyPassword('s3cret', 'plain')).toBe(false);
  });

  test('a session token names its user until it expires, and only under the secret that signed it', () => {
    const token = signSession('k1', 'alice', Date.now() + 1000);
    expect(verifySession('k1', token)).toBe('alice');
    expect(verifySession('k2', token)).toBeUndefined();
    expect(verifySession('k1', token, Date.now() + 2000)).toBeUndefined();
    expect(verifySession('k1', 'garbage')).toBeUndefined();
  });
});

describe('gateway bodies', () => {
  test('JSON is parsed whatever the content-type says; anything else is a form', () => {
    expect(parseBody(Buffer.from('{"name": "admin"}'), 'application/x-www-form-urlencoded')).toEqual({ body: { name: 'admin' }, json: true });
    expect(parseBody(Buffer.from('name=a&tag=x&tag=y'), 'application/x-www-form-urlencoded')).toEqual({ body: { name: 'a', tag: ['x', 'y'] }, json: false });
    expect(parseBody(Buffer.from(''), 'application/json')).toEqual({ body: undefined, json: false });
  });

  test('malformed JSON sent as JSON is a 400 that gives the reason', () => {
    expect(() => parseBody(Buffer.from('{"a":'), 'application/json; charset=utf-8')).toThrow(/not valid JSON/);
  });
});

describe('stream ids', () => {
  test('compare as numbers, milliseconds first, then sequence', () => {
    expect(compareIds('10-0', '9-5')).toBeGreaterThan(0);
    expect(compareIds('5-10', '5-9')).toBeGreaterThan(0);
    expect(compareIds('5-1', '5-1')).toBe(0);
    expect(compareIds('0', '1-0')).toBeLessThan(0);
  });
});
