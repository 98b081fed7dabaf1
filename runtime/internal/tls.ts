/** @module TLS for the head's Redis: a certificate authority and a server certificate made with openssl, and the CA file clients trust. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { ClusterError } from '../errors';
import { findSession } from './session';

export interface TlsFiles {
  /** The certificate authority clients trust (NODUS_TLS_CA). */
  ca: string;
  cert: string;
  key: string;
}

/** The names a server certificate of this machine is valid for: loopback, the host name and every address it has. */
export function localNames(): string[] {
  const ips = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address.replace(/%.*$/, '')));
  return [...new Set(['127.0.0.1', '::1', 'localhost', hostname(), ...ips])];
}

/**
 * Makes a certificate authority and a server certificate signed by it for `names`, in `dir` (keys
 * readable only by their owner), with openssl. Valid for ten years; `nodus start --tls` makes new ones.
 */
export function makeTlsFiles(dir: string, names: string[] = localNames()): TlsFiles {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = (name: string) => join(dir, name);
  const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  writeFileSync(f('server.ext'), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
  const run = (args: string[]) => {
    try {
      execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
      if (e.code === 'ENOENT') throw new ClusterError('TLS needs the openssl command to make its certificates: apt-get install -y openssl (or give your own Redis with TLS to --redis-url).');
      throw new ClusterError(`openssl could not make the TLS certificates: ${e.stderr?.toString().trim() || e.message}`);
    }
  };
  const days = '3650';
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', days, '-subj', '/CN=nodus cluster CA']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', `/CN=${hostname()}`]);
  run(['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.crt'), '-days', days, '-extfile', f('server.ext')]);
  return { ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key') };
}

/**
 * The CA a rediss:// connection to `address` trusts: NODUS_TLS_CA; else, for the cluster `nodus start
 * --tls` started on this machine, the CA it made; else the system's (a Redis with a public certificate).
 */
export function tlsCaFile(address: string): string | undefined {
  if (process.env.NODUS_TLS_CA) return process.env.NODUS_TLS_CA;
  // A loopback address names the same server however it is spelled.
  const session = findSession(address) ?? findSession(address.replace(/localhost|\[::1\]/, '127.0.0.1'));
  const local = session && join(session.dir, 'tls', 'ca.crt');
  return local && existsSync(local) ? local : undefined;
}
