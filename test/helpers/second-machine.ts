/**
 * @module A cluster with "a second machine": a node agent in its own network namespace (reaching Redis over a veth pair,
 * as over a network) and its own mount namespace, where a tmpfs hides a folder of this machine (the code to ship) and
 * its current directory is an empty one, and /dev/shm its own empty tmpfs (so its node's object store is out of sight). Needs root, iproute2 and util-linux's unshare; unavailable() says which is missing.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, spawnAgent, spawnHead, startRedisServer, stopProcess, type StartedProcess } from '../../runtime/internal/launcher';

export interface SecondMachineCluster {
  /** The cluster's address from this machine. */
  address: string;
  /** The node id of the agent on the second machine (it has the custom resource `secondMachine`). */
  remoteNodeId: string;
}

export class SecondMachine {
  private readonly n = process.pid % 250;
  readonly ns = `nodus-env-${process.pid}`;
  private readonly hostIf = `nev${process.pid % 100000}`;
  private readonly nsIf = `nen${process.pid % 100000}`;
  private readonly hostIp = `10.214.${this.n}.1`;
  private readonly procs: StartedProcess[] = [];
  private readonly dirs: string[] = [];
  private netns = false;

  /** `hide`: a folder the second machine must not see (a tmpfs is mounted over it there). */
  constructor(private readonly hide: string) {}

  /** Why this machine cannot make one, or undefined. */
  unavailable(): string | undefined {
    if (process.getuid?.() !== 0) return 'needs root (ip netns, mount namespaces)';
    for (const [cmd, pkg] of [
      ['ip', 'iproute2'],
      ['unshare', 'util-linux'],
    ]) {
      try {
        execFileSync(cmd, ['-V'], { stdio: 'ignore' });
      } catch {
        return `needs ${cmd}: apt-get install -y ${pkg}`;
      }
    }
    return undefined;
  }

  private ip(...args: string[]): void {
    execFileSync('ip', args, { stdio: 'ignore' });
  }

  /** Starts Redis (on loopback and the veth), a head, a node here, and the node on the second machine. */
  async start(): Promise<SecondMachineCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'nodus-second-'));
    const empty = mkdtempSync(join(tmpdir(), 'nodus-empty-'));
    this.dirs.push(dir, empty);
    this.down();
    this.netns = true;
    this.ip('netns', 'add', this.ns);
    this.ip('link', 'add', this.hostIf, 'type', 'veth', 'peer', 'name', this.nsIf);
    this.ip('link', 'set', this.nsIf, 'netns', this.ns);
    this.ip('addr', 'add', `${this.hostIp}/30`, 'dev', this.hostIf);
    this.ip('link', 'set', this.hostIf, 'up');
    this.ip('netns', 'exec', this.ns, 'ip', 'addr', 'add', `10.214.${this.n}.2/30`, 'dev', this.nsIf);
    this.ip('netns', 'exec', this.ns, 'ip', 'link', 'set', this.nsIf, 'up');
    this.ip('netns', 'exec', this.ns, 'ip', 'link', 'set', 'lo', 'up');
    // Off loopback, Redis gets a password, as the CLI requires.
    const redis = await startRedisServer({ port: await freePort(), dir, detached: false, bind: `127.0.0.1 ${this.hostIp}`, password: `second-${process.pid}` });
    this.procs.push(redis);
    const env = { NODUS_SESSION_DIR: dir };
    this.procs.push(await spawnHead({ address: redis.address, attached: true, logFile: join(dir, 'head.log'), env }));
    this.procs.push(await spawnAgent({ address: redis.address, attached: true, logFile: join(dir, 'agent-here.log'), resources: { CPU: 1 }, headNode: true, env }));
    // There: the hidden folder is an empty tmpfs, the current directory and every cache an empty folder.
    // Its shared memory is its own too (a tmpfs over /dev/shm): objects in its node store are not visible here.
    const hideAndRun = 'mount -t tmpfs nodus-hidden "$1" && mount -t tmpfs nodus-shm /dev/shm && cd "$2" && shift 2 && exec "$@"';
    const remote = await spawnAgent({
      address: redis.address.replace('127.0.0.1', this.hostIp),
      attached: true,
      logFile: join(dir, 'agent-there.log'),
      resources: { CPU: 1, secondMachine: 1 },
      env: { NODUS_SESSION_DIR: empty, NODUS_ENV_CACHE_DIR: join(empty, 'cache') },
      wrap: ['ip', 'netns', 'exec', this.ns, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c', hideAndRun, 'sh', this.hide, empty],
    });
    this.procs.push(remote);
    return { address: redis.address, remoteNodeId: remote.nodeId };
  }

  private down(): void {
    try {
      this.ip('netns', 'del', this.ns);
    } catch {
      /* not there */
    }
  }

  /** Stops every process (the mount namespace and its tmpfs end with the last of them), removes the namespace and folders. */
  async stop(): Promise<void> {
    for (const p of this.procs.reverse()) await stopProcess(p.pid, 3000);
    if (this.netns) this.down();
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}

/**
 * Runs `body` on a cluster with a second machine (hiding `hide` from it), stopped afterwards. Where this machine
 * cannot make one, asserts that it says why (needs root, ip netns, mount namespaces; .ci/run runs as root) and
 * runs nothing.
 */
export async function onSecondMachine(hide: string, body: (cluster: SecondMachineCluster) => Promise<void>): Promise<void> {
  const machine = new SecondMachine(hide);
  const why = machine.unavailable();
  if (why) {
    expect(why).toMatch(/needs/);
    return;
  }
  const cluster = await machine.start();
  try {
    await body(cluster);
  } finally {
    await machine.stop();
  }
}
