/**
 * @module Runtime envs on a real cluster: a working dir shipped to the nodes with a dependency only its lockfile
 * installs, variables per job, task and actor, envs kept apart, packages stored once, set-up failures reported, and a
 * node on "another machine" (its own network namespace, the code hidden from it) running shipped tasks and actors.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ActorDiedError, RuntimeEnvError, get, init, shutdown } from '../../runtime';
import { freePort, spawnAgent, spawnIngress, stopProcess, type StartedProcess } from '../../runtime/internal/launcher';
import { GreeterActor, nested, shout, whereAmI } from '../fixtures/runtime-env/app/tasks';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { onSecondMachine } from '../helpers/second-machine';

const APP = join(__dirname, '..', 'fixtures', 'runtime-env', 'app');
const CLI = join(__dirname, '..', '..', 'dist', 'scripts', 'cli.js');
const run = promisify(execFile);

type Tasks = typeof import('../fixtures/runtime-env/app/tasks');

/** The fixture's tasks as defined in a copy of it (remote functions are shipped from the working dir that holds them). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tasksOf = (dir: string): Tasks => require(join(dir, 'tasks.ts')) as Tasks;

/** A copy of the fixture's working dir, changed by `edit`: a package of its own (a new hash). */
function appCopy(edit: (dir: string) => void = () => undefined): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'nodus-env-')), 'app');
  cpSync(APP, dir, { recursive: true, filter: (src) => !src.includes('node_modules') });
  writeFileSync(join(dir, 'stamp.txt'), `${Date.now()} ${Math.random()}`);
  edit(dir);
  return dir;
}

describe('runtime envs', () => {
  let cluster: TestCluster;
  const temps: string[] = [];
  const copy = (edit?: (dir: string) => void) => {
    const d = appCopy(edit);
    temps.push(join(d, '..'));
    return d;
  };

  beforeAll(async () => {
    cluster = await startCluster({ nodes: 1, cpus: 2 });
  });
  afterEach(() => shutdown());
  afterAll(async () => {
    await shutdown();
    await cluster?.stop();
    for (const t of temps) rmSync(t, { recursive: true, force: true });
  });

  test('a task runs code shipped in the working dir, with a dependency only its lockfile installs, and the variables of the job', async () => {
    await init({ address: cluster.address, logToDriver: false, runtimeEnv: { workingDir: APP, env: { GREETING: 'hi' } } });
    expect(await get(shout.remote('it works'))).toBe('IT WORKS!');
    const where = await get(whereAmI.remote('GREETING'));
    expect(where.value).toBe('hi');
    // It runs in the node's unpacked copy, not in the folder it was shipped from.
    expect(where.cwd).toContain('runtime-envs');
    expect(where.cwd).not.toBe(APP);
    // A task's tasks inherit the env.
    expect((await get(nested.remote('GREETING'))).value).toBe('hi');
  });

  test('two envs on one node run in different processes with their own variables; a task merges its variables over the job', async () => {
    await init({ address: cluster.address, logToDriver: false, runtimeEnv: { workingDir: APP, env: { MODE: 'job', KEEP: 'kept' } } });
    const a = whereAmI.options({ runtimeEnv: { env: { MODE: 'a' } } });
    const b = whereAmI.options({ runtimeEnv: { env: { MODE: 'b' } } });
    const [ra, rb, rjob] = await get([a.remote('MODE'), b.remote('MODE'), whereAmI.remote('MODE')]);
    expect([ra.value, rb.value, rjob.value]).toEqual(['a', 'b', 'job']);
    expect(new Set([ra.pid, rb.pid, rjob.pid]).size).toBe(3);
    expect((await get(a.remote('KEEP'))).value).toBe('kept');
    // Again and again: each env's tasks stay in that env's processes.
    const again = await get(Array.from({ length: 6 }, (_, i) => (i % 2 ? b : a).remote('MODE')));
    for (const [i, r] of again.entries()) {
      expect(r.value).toBe(i % 2 ? 'b' : 'a');
      expect(r.pid).not.toBe(i % 2 ? ra.pid : rb.pid);
    }
    const actor = GreeterActor.options({ runtimeEnv: { env: { MODE: 'actor' } } }).remote('you');
    expect(await get(actor.greet.remote())).toBe('HELLO YOU!');
    expect((await get(actor.where.remote('MODE'))).value).toBe('actor');
  });

  test('a working dir used again is not stored again: same content, same package', async () => {
    const dir = copy();
    const { shout } = tasksOf(dir);
    const first = await init({ address: cluster.address, logToDriver: false, runtimeEnv: { workingDir: dir } });
    expect(first.runtimeEnv).toMatchObject({ uploaded: true });
    expect(await get(shout.remote('once'))).toBe('ONCE!');
    const packages = (await cluster.redis.keys('nodus:pkg:*')).sort();
    await shutdown();
    const second = await init({ address: cluster.address, logToDriver: false, runtimeEnv: { workingDir: dir } });
    expect(second.runtimeEnv).toMatchObject({ uploaded: false, key: first.runtimeEnv!.key });
    expect(await get(shout.remote('twice'))).toBe('TWICE!');
    expect((await cluster.redis.keys('nodus:pkg:*')).sort()).toEqual(packages);
  });

  test('a working dir that cannot be shipped fails init, and a task, saying why', async () => {
    const big = copy((d) => writeFileSync(join(d, 'weights.bin'), Buffer.alloc(3 * 1024 * 1024)));
    const { whereAmI } = tasksOf(big);
    process.env.NODUS_RUNTIME_ENV_MAX_BYTES = String(1024 * 1024);
    try {
      await expect(init({ address: cluster.address, logToDriver: false, runtimeEnv: { workingDir: big } })).rejects.toThrow(
        /over the limit of 1\.0 MiB \(NODUS_RUNTIME_ENV_MAX_BYTES\)\. Biggest entries: weights\.bin \(3\.0 MiB\)/,
      );
      await init({ address: cluster.address, logToDriver: false });
      const err = await get(whereAmI.options({ runtimeEnv: { workingDir: big } }).remote('X')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RuntimeEnvError);
      expect((err as Error).message).toMatch(/weights\.bin \(3\.0 MiB\).*excludes/);
    } finally {
      delete process.env.NODUS_RUNTIME_ENV_MAX_BYTES;
    }
    await expect(get(whereAmI.options({ runtimeEnv: { workingDir: join(big, 'nope') } }).remote('X'))).rejects.toThrow(/runtimeEnv\.workingDir .*nope does not exist/);
    // Left out with excludes, it ships.
    expect((await get(whereAmI.options({ runtimeEnv: { workingDir: big, excludes: ['*.bin'], env: { V: '1' } } }).remote('V'))).value).toBe('1');
  });

  test('a set-up failure on the node reaches the submitter naming the node and the step, for tasks and actors', async () => {
    // package.json asks for a package its lockfile does not have: npm ci refuses.
    const broken = copy((d) => {
      const pkg = JSON.parse(readFileSync(join(d, 'package.json'), 'utf8'));
      pkg.dependencies['not-in-the-lockfile'] = '1.0.0';
      writeFileSync(join(d, 'package.json'), JSON.stringify(pkg));
    });
    const { shout, GreeterActor } = tasksOf(broken);
    await init({ address: cluster.address, logToDriver: false, runtimeEnv: { workingDir: broken } });
    const err = await get(shout.remote('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeEnvError);
    expect((err as Error).message).toMatch(new RegExp(`node ${cluster.agents[0].nodeId} could not set it up at step 'npm ci': npm ci exited with code \\d+`));
    const actor = GreeterActor.remote('x');
    const died = await get(actor.greet.remote()).catch((e: unknown) => e);
    expect(died).toBeInstanceOf(ActorDiedError);
    expect((died as Error).message).toMatch(/could not set it up at step 'npm ci'/);
  });

  test("a node that cannot install uses the submitter's shipped node_modules, and says what to do without them", async () => {
    const offline = await spawnAgent({ address: cluster.address, attached: true, logFile: join(cluster.dir, 'agent-offline.log'), resources: { CPU: 1, offline: 1 }, env: { NODUS_SESSION_DIR: cluster.dir, NODUS_OFFLINE: '1' } });
    cluster.agents.push(offline);
    // Installed here as a plain folder (what npm install leaves for a registry package).
    const dir = copy((d) => cpSync(join(d, 'vendor', 'tiny-dep'), join(d, 'node_modules', 'tiny-dep'), { recursive: true }));
    const { shout } = tasksOf(dir);
    await init({ address: cluster.address, logToDriver: false, runtimeEnv: { workingDir: dir, shipNodeModules: true } });
    const there = shout.options({ resources: { offline: 1 } });
    expect(await get(there.remote('shipped'))).toBe('SHIPPED!');
    const without = there.options({ resources: { offline: 1 }, runtimeEnv: { workingDir: dir, shipNodeModules: false } });
    await expect(get(without.remote('x'))).rejects.toThrow(new RegExp(`node ${offline.nodeId} could not set it up at step 'npm ci': this node is offline .*shipNodeModules: true`));
  });
});

describe('a second machine without the code', () => {
  test('a node in its own network namespace, with the code hidden from it, runs shipped tasks and actors', async () => {
    await onSecondMachine(APP, async (cluster) => {
      try {
        await init({ address: cluster.address, logToDriver: false, runtimeEnv: { workingDir: APP, env: { WHO: 'shipped' } } });
        const far = { resources: { secondMachine: 1 } };
        const where = await get(whereAmI.options(far).remote('WHO', join(APP, 'tasks.ts')));
        expect(where.node).toBe(cluster.remoteNodeId);
        expect(where.value).toBe('shipped');
        // The folder the code was shipped from is empty there.
        expect(where.sees).toBe(false);
        expect(await get(shout.options(far).remote('far away'))).toBe('FAR AWAY!');
        const actor = GreeterActor.options({ ...far, numCpus: 0 }).remote('there');
        expect(await get(actor.greet.remote())).toBe('HELLO THERE!');
        expect(await get(actor.where.remote('WHO'))).toMatchObject({ value: 'shipped', node: cluster.remoteNodeId });
      } finally {
        await shutdown();
      }
    });
  });

  test('nodus serve run --working-dir puts a replica on that machine, running the shipped app, answering through the ingress', async () => {
    await onSecondMachine(APP, async (cluster) => {
      const dir = mkdtempSync(join(tmpdir(), 'nodus-serve-far-'));
      let ingress: StartedProcess | undefined;
      try {
        const port = await freePort();
        ingress = await spawnIngress({ address: cluster.address, attached: true, logFile: join(dir, 'serve.log'), port, env: { NODUS_SESSION_DIR: dir } });
        // Half the machine's `secondMachine` each: a redeploy starts the new replica before it stops the old one.
        const serveRun = () =>
          run(process.execPath, [CLI, 'serve', 'run', 'server.ts', '--name', 'far', '--working-dir', APP, '--env', 'WHO=served', '--resources', '{"secondMachine": 0.5}', '--detach', '--address', cluster.address], {
            cwd: APP,
            env: { ...process.env, NODUS_SESSION_DIR: dir },
            timeout: 120_000,
          });
        const first = await serveRun();
        expect(first.stdout).toMatch(/Working dir \S+: \d+ files, [\d.]+ KiB (shipped to the cluster|in the cluster already)/);
        expect(first.stdout).toMatch(/far is running at http:\/\/127\.0\.0\.1:\d+\/far/);
        const ask = async () => {
          const res = await fetch(`http://127.0.0.1:${port}/far/?say=from afar&path=${encodeURIComponent(join(APP, 'server.ts'))}`, { signal: AbortSignal.timeout(30_000) });
          expect(res.status).toBe(200);
          return (await res.json()) as { said: string; value: string; node: string; cwd: string; sees: boolean };
        };
        // The app and its dependency come from the working dir, unpacked on that machine, where the folder is hidden.
        expect(await ask()).toMatchObject({ said: 'FROM AFAR!', value: 'served', node: cluster.remoteNodeId, sees: false });
        expect((await ask()).cwd).toMatch(/\/cache\/agent-\S+\/pkg-\w+$/);
        // In another network namespace its loopback port is out of reach: the ingress calls it as an actor.
        const status = JSON.parse((await run(process.execPath, [CLI, 'serve', 'status', '--json', '--address', cluster.address], { env: { ...process.env, NODUS_SESSION_DIR: dir } })).stdout) as {
          apps: { name: string; runtimeEnv?: { pkg?: string }; module: string; state: { replicas: { node: string; directPort?: number }[] } }[];
        };
        const far = status.apps.find((a) => a.name === 'far')!;
        expect(far).toMatchObject({ module: 'server.ts', runtimeEnv: { pkg: expect.stringMatching(/^[0-9a-f]+$/) } });
        expect(far.state.replicas).toEqual([expect.objectContaining({ node: cluster.remoteNodeId })]);
        expect(far.state.replicas[0].directPort).toBeUndefined();
        // The same folder again: nothing uploaded, and the redeploy rolls onto a replica there too.
        const again = await serveRun();
        expect(again.stdout).toMatch(/Working dir \S+: \d+ files, [\d.]+ KiB, in the cluster already/);
        expect(await ask()).toMatchObject({ said: 'FROM AFAR!', value: 'served', node: cluster.remoteNodeId });
      } finally {
        if (ingress) await stopProcess(ingress.pid, 3000);
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
