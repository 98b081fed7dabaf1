import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError } from '../../runtime';
import type { DeploymentConfig } from '../../runtime/protocol/deploy';
import type { Redis } from 'ioredis';
import { readServeYaml, resolveDeployment } from '../../serve/deploy/config';
import { shipApps } from '../../serve/deploy/ship';
import { AppRouter, OverloadedError, type RoutedReplica } from '../../serve/deploy/router';

const root = resolve(__dirname, '../..');

test('a deployment is named after its folder and routed at /name, one fixed replica, unless told otherwise', () => {
  const spec = resolveDeployment({ import: 'services/my_service/app.ts' }, root);
  expect(spec).toMatchObject({ name: 'my_service', routePrefix: '/my_service', module: join(root, 'services/my_service/app.ts') });
  expect(spec.config).toMatchObject({ replicas: 1, minReplicas: 1, maxReplicas: 1, maxOngoingRequests: 5, maxQueuedRequests: 100, numCpus: 0 });
  const scaled = resolveDeployment({ import: 'services/my_service/app.ts:app', minReplicas: 1, maxReplicas: 4, downscaleDelayS: 1.5 }, root);
  expect(scaled).toMatchObject({ export: 'app', config: { replicas: 1, minReplicas: 1, maxReplicas: 4, targetOngoingRequests: 2, downscaleDelayMs: 1500 } });
});

test('bad deployment options are refused saying what to do', () => {
  const bad = (o: object) => () => resolveDeployment({ import: 'services/my_service/app.ts', ...o }, root);
  expect(bad({ replica: 2 })).toThrow("Unknown deployment option 'replica'. Did you mean 'replicas'?");
  expect(bad({ minReplicas: 3, maxReplicas: 2 })).toThrow('minReplicas (3) is above maxReplicas (2)');
  expect(bad({ routePrefix: '/-/x' })).toThrow(ConfigError);
  expect(bad({ targetOngoingRequests: 9 })).toThrow('lower it or raise maxOngoingRequests');
  expect(() => resolveDeployment({ import: 'services/nothing/here.ts' }, root)).toThrow(/No module services\/nothing\/here\.ts/);
});

test("a deployment's runtimeEnv: its working dir found from the base folder, the module inside it, a misspelt field named", async () => {
  const spec = resolveDeployment({ import: 'app.ts', runtimeEnv: { workingDir: 'services/my_service', env: { LOG_LEVEL: 'debug' }, excludes: ['*.bin'] } }, root);
  // Not in the base folder: found in the working dir.
  expect(spec).toMatchObject({ name: 'my_service', module: join(root, 'services/my_service/app.ts'), envOptions: { workingDir: join(root, 'services/my_service'), env: { LOG_LEVEL: 'debug' }, excludes: ['*.bin'] } });
  const bad = (o: object) => () => resolveDeployment({ import: 'services/my_service/app.ts', ...o }, root);
  expect(bad({ runtimeEnv: { workinDir: 'services' } })).toThrow("Unknown runtimeEnv option 'workinDir'. Did you mean 'workingDir'?");
  expect(bad({ runtime_env: {} })).toThrow("Did you mean 'runtimeEnv'?");
  expect(bad({ runtimeEnv: { workingDir: 'services/prime' } })).toThrow(/The module \S+my_service\/app\.ts is outside runtimeEnv\.workingDir \S+prime: .*give a working dir that holds the module/);
  expect(bad({ runtimeEnv: { workingDir: 'services/nowhere' } })).toThrow(/runtimeEnv\.workingDir \S+nowhere is not a folder/);
  // Shipped: the module travels relative to the working dir (no Redis is needed when nothing is shipped: inside a job).
  const job = { key: 'k'.repeat(16), pkg: 'a'.repeat(64), vars: { MODE: 'job' } };
  const inJob = { NODUS_RUNTIME_ENV: JSON.stringify(job), NODUS_ENV_DIR: join(root, 'services') };
  const [inherited] = await shipApps({} as Redis, 'nodus', [resolveDeployment({ import: 'services/my_service/app.ts' }, root)], inJob);
  expect(inherited.spec).toMatchObject({ module: 'my_service/app.ts', runtimeEnv: job });
  expect(inherited.spec).not.toHaveProperty('envOptions');
  // Variables of its own go over the job's, in the job's working dir.
  const [over] = await shipApps({} as Redis, 'nodus', [resolveDeployment({ import: 'services/my_service/app.ts', runtimeEnv: { env: { MODE: 'app' } } }, root)], inJob);
  expect(over.spec.runtimeEnv).toMatchObject({ pkg: job.pkg, vars: { MODE: 'app' } });
  expect(over.spec.runtimeEnv!.key).not.toBe(job.key);
  expect(over.spec.module).toBe('my_service/app.ts');
});

test('a serve.yaml lists applications; a snake_case key and a shared route prefix are refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodus-yaml-'));
  try {
    const file = join(dir, 'serve.yaml');
    writeFileSync(file, `applications:\n  - import: ${root}/services/my_service/app.ts\n    replicas: 2\n  - name: primes\n    import: ${root}/services/prime/app.ts\n    numCpus: 1\n`);
    expect(readServeYaml(file).map((s) => [s.name, s.routePrefix, s.config.replicas, s.config.numCpus])).toEqual([
      ['my_service', '/my_service', 2, 0],
      ['primes', '/primes', 1, 1],
    ]);
    writeFileSync(file, `applications:\n  - import: ${root}/services/my_service/app.ts\n    route_prefix: /x\n`);
    expect(() => readServeYaml(file)).toThrow("applications[0]: Unknown deployment option 'route_prefix'. Did you mean 'routePrefix'?");
    writeFileSync(file, `applications:\n  - import: ${root}/services/my_service/app.ts\n  - name: other\n    import: ${root}/services/prime/app.ts\n    routePrefix: /my_service\n`);
    expect(() => readServeYaml(file)).toThrow('both have the route prefix /my_service');
    writeFileSync(file, 'apps: []\n');
    expect(() => readServeYaml(file)).toThrow('needs a list under `applications:`');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const config = (o: Partial<DeploymentConfig> = {}): DeploymentConfig => ({
  replicas: 2, minReplicas: 2, maxReplicas: 2, targetOngoingRequests: 2, maxOngoingRequests: 2, maxQueuedRequests: 1,
  upscaleDelayMs: 0, downscaleDelayMs: 0, gracefulShutdownTimeoutMs: 0, numCpus: 0, numGpus: 0, resources: {}, ...o,
});
const replica = (name: string): RoutedReplica => ({ name, generation: 1, handle: {} as RoutedReplica['handle'], state: 'running', ongoing: 0, dead: false });

test('the router gives each request to the least-loaded replica, queues past maxOngoingRequests, then refuses with Retry-After', async () => {
  const router = new AppRouter('a', '/a', config());
  router.add(replica('r1'));
  router.add(replica('r2'));
  const picks = [await router.acquire(), await router.acquire(), await router.acquire(), await router.acquire()];
  // Two each: never a third on one while the other has fewer.
  expect(picks.map((p) => p.name).sort()).toEqual(['r1', 'r1', 'r2', 'r2']);
  const queued = router.acquire();
  expect(router.queued).toBe(1);
  expect(router.demand).toBe(5);
  await expect(router.acquire()).rejects.toBeInstanceOf(OverloadedError);
  router.release(picks[0]);
  expect((await queued).name).toBe(picks[0].name);
  // A draining or dead replica takes nothing new.
  router.drain('r1');
  router.release(picks[1]);
  router.release(picks[2]);
  router.release(picks[3]);
  expect((await router.acquire()).name).toBe('r2');
  router.markDead('r2');
  await expect(Promise.race([router.acquire().then(() => 'got one'), new Promise((r) => setTimeout(() => r('waiting'), 50))])).resolves.toBe('waiting');
  router.failQueued('gone');
});
