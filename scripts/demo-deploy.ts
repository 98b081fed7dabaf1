/** @module The deploy part of `npm start`: my_service as two serve replicas behind the ingress, then a job that runs tasks. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { entryPoint, freePort, portInUse, spawnIngress, stopProcess } from '../runtime/internal/launcher';

/** The repository root (this file runs from dist/scripts). */
const ROOT = join(__dirname, '..', '..');

/** Runs `nodus ARGS` as a user would type it (printed with `$ `), its output indented; rejects on a non-zero exit. */
function nodus(address: string, args: string[]): Promise<void> {
  console.log(`$ npx nodus ${args.map((a) => (/^[\w./=:-]+$/.test(a) ? a : `'${a}'`)).join(' ')}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [entryPoint('cli'), ...args], { cwd: ROOT, env: { ...process.env, NODUS_ADDRESS: address }, stdio: ['ignore', 'pipe', 'pipe'] });
    let partial = '';
    const indent = (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) console.log(`  ${line}`);
    };
    child.stdout.on('data', indent);
    child.stderr.on('data', indent);
    child.on('error', reject);
    child.on('close', (code) => {
      if (partial) console.log(`  ${partial}`);
      if (code === 0) resolve();
      else reject(new Error(`npx nodus ${args.join(' ')} exited with code ${code}`));
    });
  });
}

/**
 * `nodus serve run` of my_service with 2 replicas behind an ingress on :8000 (or a free port), two requests through
 * it and `nodus serve status`; then `nodus job submit` of services/demo/job, its log streamed until it succeeds.
 * Resolves to the ingress's URL and what stops it all (the app's replicas and the ingress), which the caller runs now
 * or, with --keep, later.
 */
export async function deployDemo(address: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const port = (await portInUse(8000)) ? await freePort() : 8000;
  const dir = mkdtempSync(join(tmpdir(), 'nodus-demo-serve-'));
  const ingress = await spawnIngress({ address, attached: true, logFile: join(dir, 'serve.log'), port });
  const url = String(ingress.info.url);
  let deployed = false;
  const stop = async () => {
    if (deployed) await nodus(address, ['serve', 'delete', 'my_service']).catch((err: Error) => console.error(`  ${err.message}`));
    await stopProcess(ingress.pid, 3000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    console.log(`\nDeploy: my_service as 2 serve replicas behind the ingress at ${url}.`);
    deployed = true;
    await nodus(address, ['serve', 'run', 'services/my_service/app.ts', '--replicas', '2', '--detach']);
    console.log(`$ curl ${url}/my_service/openapi.json`);
    const spec = await fetch(`${url}/my_service/openapi.json`);
    const api = (await spec.json()) as { info: { title: string; version: string }; paths: Record<string, unknown> };
    console.log(`  ${spec.status} ${api.info.title} ${api.info.version}, entry points ${Object.keys(api.paths).join(', ')} (the prefix /my_service stripped on the way)`);
    console.log(`$ curl ${url}/my_service/-/`);
    const form = await fetch(`${url}/my_service/-/`);
    console.log(`  ${form.status} ${(await form.text()).slice(0, 110)}...`);
    await nodus(address, ['serve', 'status']);
    const job = relative(ROOT, join(ROOT, 'services', 'demo', 'job'));
    console.log(`\nA job: the driver in ${job} runs on the cluster from a shipped copy of its folder, its log streams here.`);
    await nodus(address, ['job', 'submit', '--working-dir', job, '--', 'tsx', 'main.ts']);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, stop };
}
