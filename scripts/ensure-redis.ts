/**
 * @module Set-up step of `npm start` and `npm test`: make sure redis-server (and openssl, for TLS, and Chromium, for the
 * panel's browser tests) is installed, installing it where we can.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { findRedisServer, REDIS_INSTALL_HINT } from '../runtime/internal/launcher';

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** openssl makes the certificates of `nodus start --tls` (and of its test): installed where we can, not required. */
function ensureOpenssl(): void {
  if (has('openssl') || process.getuid?.() !== 0 || !has('apt-get')) return;
  console.log("nodus: installing Debian's openssl package with apt-get (TLS certificates for `nodus start --tls`)...");
  try {
    execFileSync('apt-get', ['install', '-y', '-qq', 'openssl'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } catch (err) {
    console.error(`nodus: installing openssl failed (${(err as Error).message}); only --tls needs it.`);
  }
}

/**
 * The panel's browser tests drive Debian's chromium-headless-shell (through playwright-core, which downloads nothing):
 * installed where we can, not required to run a cluster.
 */
function ensureChromium(): void {
  // `npm start` runs this too, and needs no browser.
  if (process.env.npm_lifecycle_event === 'prestart') return;
  if (has('chromium-headless-shell') || process.env.NODUS_CHROMIUM || process.getuid?.() !== 0 || !has('apt-get')) return;
  console.log("nodus: installing Debian's chromium-headless-shell package with apt-get (the panel's browser tests)...");
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', 'chromium-headless-shell'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } catch (err) {
    console.error(`nodus: installing chromium-headless-shell failed (${(err as Error).message}); only the browser tests (test/browser) need it.`);
  }
}

function main(): number {
  ensureOpenssl();
  ensureChromium();
  try {
    findRedisServer();
    return 0;
  } catch {
    /* not installed: try below */
  }
  const isRoot = process.getuid?.() === 0;
  if (isRoot && has('apt-get')) {
    console.log("nodus: redis-server is not installed; installing Debian's redis-server package with apt-get (the cluster keeps its queues and objects in Redis)...");
    try {
      execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
      execFileSync('apt-get', ['install', '-y', '-qq', 'redis-server'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
      findRedisServer();
      console.log('nodus: redis-server installed.');
      return 0;
    } catch (err) {
      console.error(`nodus: installing redis-server failed (${(err as Error).message}).`);
    }
  }
  console.error(`nodus: redis-server is required and is not installed. Install it with:\n  ${REDIS_INSTALL_HINT}\nthen run the command again.`);
  return 1;
}

process.exit(main());
