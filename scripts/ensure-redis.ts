/** @module Set-up step of `npm start` and `npm test`: make sure redis-server is installed, installing it where we can. */
import { execFileSync, spawnSync } from 'node:child_process';
import { findRedisServer, REDIS_INSTALL_HINT } from '../runtime/internal/launcher';

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function main(): number {
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
