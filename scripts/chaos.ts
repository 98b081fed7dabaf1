/**
 * @module `npm run chaos`: a mixed workload (tasks, nested tasks, actors receiving numbered messages)
 * while worker processes are killed every second or so, a whole node every ten seconds, and the head
 * once. Checks that nothing is lost, that resources are all free at the end and that no worker
 * process is left over. `--short` runs about 40 s (the test suite runs it); the default runs 3 minutes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { get, init, kill, shutdown, type Ref } from '../runtime';
import { readClusterStatus } from '../runtime/internal/cluster-status';
import { freePort, isRunning, spawnAgent, spawnHead, startRedisServer, stopProcess, type StartedProcess } from '../runtime/internal/launcher';
import { Redis } from 'ioredis';
import { ActorDiedError } from '../runtime';
import { Keys } from '../runtime/protocol';
import { AtMostOnceActor, ReceiverActor, chaosNested, chaosSquare } from './chaos-tasks';

const short = process.argv.includes('--short');
const DURATION_MS = Number(process.env.CHAOS_SECONDS ?? (short ? 40 : 180)) * 1000;
const NODE_TIMEOUT_MS = 3000;

/** Direct children of a process, from /proc. */
function children(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid && fields[0] !== 'Z') out.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * A node agent in its own network namespace, joined to this host by a veth pair, so that the test can
 * cut its link: a real partition, not a dead process. Needs root and iproute2; returns why not otherwise.
 */
class PartitionedHost {
  readonly ns = `nodus-chaos-${process.pid}`;
  readonly hostIf = `nch${process.pid % 100000}`;
  readonly nsIf = `ncn${process.pid % 100000}`;
  readonly hostIp = `10.213.${process.pid % 250}.1`;
  readonly nsIp = `10.213.${process.pid % 250}.2`;

  static unavailable(): string | undefined {
    if (process.getuid?.() !== 0) return 'needs root (ip netns)';
    try {
      execFileSync('ip', ['-V'], { stdio: 'ignore' });
    } catch {
      return 'needs iproute2: apt-get install -y iproute2';
    }
    return undefined;
  }

  private ip(...args: string[]): void {
    execFileSync('ip', args, { stdio: 'ignore' });
  }

  up(): void {
    this.ip('netns', 'add', this.ns);
    this.ip('link', 'add', this.hostIf, 'type', 'veth', 'peer', 'name', this.nsIf);
    this.ip('link', 'set', this.nsIf, 'netns', this.ns);
    this.ip('addr', 'add', `${this.hostIp}/30`, 'dev', this.hostIf);
    this.ip('link', 'set', this.hostIf, 'up');
    this.ip('netns', 'exec', this.ns, 'ip', 'addr', 'add', `${this.nsIp}/30`, 'dev', this.nsIf);
    this.ip('netns', 'exec', this.ns, 'ip', 'link', 'set', this.nsIf, 'up');
    this.ip('netns', 'exec', this.ns, 'ip', 'link', 'set', 'lo', 'up');
  }

  cut(): void {
    this.ip('link', 'set', this.hostIf, 'down');
  }

  heal(): void {
    this.ip('link', 'set', this.hostIf, 'up');
  }

  down(): void {
    try {
      this.ip('netns', 'del', this.ns);
    } catch {
      /* already gone */
    }
  }
}

const pick = <T>(list: T[]): T => list[Math.floor(Math.random() * list.length)];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'nodus-chaos-'));
  const whyNoPartition = PartitionedHost.unavailable();
  const partition = whyNoPartition ? undefined : new PartitionedHost();
  partition?.up();
  // With a partitioned host, Redis also listens on its veth, with a password as off-loopback Redis must.
  const redis = await startRedisServer({
    port: await freePort(),
    dir,
    detached: false,
    bind: partition ? `127.0.0.1 ${partition.hostIp}` : '127.0.0.1',
    password: partition ? `chaos-${process.pid}` : undefined,
  });
  const address = redis.address;
  let head = await spawnHead({ address, attached: true, logFile: join(dir, 'head.log'), nodeTimeoutMs: NODE_TIMEOUT_MS });
  const agents: (StartedProcess & { nodeId: string })[] = [];
  const addNode = async () => {
    const a = await spawnAgent({ address, attached: true, logFile: join(dir, `agent-${agents.length}.log`), resources: { CPU: 2, actorSlot: 100 } });
    agents.push(a);
    return a;
  };
  for (let i = 0; i < 3; i++) await addNode();
  let partitioned: { before: string; after?: string } | undefined;
  if (partition) {
    const nsAddress = address.replace('127.0.0.1', partition.hostIp);
    const a = await spawnAgent({ address: nsAddress, attached: true, logFile: join(dir, 'agent-netns.log'), resources: { CPU: 2, actorSlot: 100 }, wrap: ['ip', 'netns', 'exec', partition.ns] });
    agents.push(a);
    partitioned = { before: a.nodeId };
  }
  await init({ address, logToDriver: false });
  const stats = { tasks: 0, nested: 0, messages: 0, workersKilled: 0, nodesKilled: 0, headRestarts: 0, wrong: 0, lost: 0 };
  const seenWorkers = new Set<number>();
  const alive = () => agents.filter((a) => isRunning(a.pid));

  // Actors receiving numbered messages, as in Ray's chaos_many_actors.
  const actors = Array.from({ length: 4 }, (_, i) => ReceiverActor.remote(`a${i}`));
  const atMostOnce = Array.from({ length: 2 }, (_, i) => AtMostOnceActor.remote(`m${i}`));
  const amo: { name: string; n: number; ok: boolean }[] = [];
  let stop = false;

  const chaos = (async () => {
    let lastNodeKill = Date.now();
    let headKilled = false;
    while (!stop) {
      await sleep(700 + Math.random() * 600);
      if (stop) break;
      const nodes = alive();
      const workers = nodes.flatMap((a) => children(a.pid));
      workers.forEach((w) => seenWorkers.add(w));
      if (workers.length) {
        try {
          process.kill(pick(workers), 'SIGKILL');
          stats.workersKilled++;
        } catch {
          /* it finished first */
        }
      }
      // The namespaced node is kept for the partition scenario.
      const killable = nodes.filter((a) => a.nodeId !== partitioned?.before);
      if (Date.now() - lastNodeKill > 10_000 && killable.length > 1) {
        lastNodeKill = Date.now();
        const victim = pick(killable);
        const procs = children(victim.pid);
        process.kill(victim.pid, 'SIGKILL');
        for (const p of procs) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {
            /* gone with it */
          }
        }
        stats.nodesKilled++;
        await addNode();
      }
      if (partition && partitioned && !partitioned.after && Date.now() - t0 > DURATION_MS / 4) {
        // Cut the namespaced node off; heal the link once the head has declared it dead.
        partition.cut();
        const cutAt = Date.now();
        while (Date.now() - cutAt < 15_000) {
          const s = await readClusterStatus(address).catch(() => undefined);
          if (s?.nodes.find((n) => n.id === partitioned!.before)?.state === 'dead') break;
          await sleep(200);
        }
        partition.heal();
        partitioned.after = 'healed';
      }
      if (!headKilled && Date.now() - t0 > DURATION_MS / 2) {
        headKilled = true;
        process.kill(head.pid, 'SIGKILL');
        await sleep(2000);
        head = await spawnHead({ address, attached: true, logFile: join(dir, 'head-2.log'), nodeTimeoutMs: NODE_TIMEOUT_MS });
        stats.headRestarts++;
      }
    }
  })();

  const checks: Promise<void>[] = [];
  let batch = 0;
  while (Date.now() - t0 < DURATION_MS) {
    const base = batch++ * 1000;
    const squares = Array.from({ length: 150 }, (_, i) => ({ x: base + i, ref: chaosSquare.remote(base + i) }));
    const nested = Array.from({ length: 20 }, (_, i) => ({ x: base + i, ref: chaosNested.remote(base + i) }));
    const msgs = actors.flatMap((a) => Array.from({ length: 25 }, (_, i) => ({ n: base + i, ref: a.message.remote(base + i) })));
    const check = async <T>(list: { ref: Ref<T> }[], expected: (i: number) => T, what: 'tasks' | 'nested' | 'messages') => {
      const results = await Promise.allSettled(list.map((e) => get(e.ref, { timeout: 120_000 })));
      results.forEach((r, i) => {
        if (r.status === 'rejected') {
          stats.lost++;
          console.error(`lost: ${what} #${i}: ${(r.reason as Error).message}`);
        } else if (r.value !== expected(i)) stats.wrong++;
        else stats[what]++;
      });
    };
    checks.push(check(squares, (i) => squares[i].x * squares[i].x, 'tasks'));
    checks.push(check(nested, (i) => nested[i].x * nested[i].x + 1, 'nested'));
    checks.push(check(msgs, (i) => msgs[i].n, 'messages').then(() => (stats.lost ? describeActors(address, actors.map((a) => a.actorId)) : undefined)));
    // At-most-once actors: a message either comes back or fails with ActorDiedError; counted below.
    checks.push(
      Promise.all(
        atMostOnce.flatMap((a, k) =>
          Array.from({ length: 10 }, (_, i) =>
            get(a.message.remote(base + i), { timeout: 120_000 }).then(
              () => amo.push({ name: `m${k}`, n: base + i, ok: true }),
              (e: unknown) => (e instanceof ActorDiedError ? amo.push({ name: `m${k}`, n: base + i, ok: false }) : stats.lost++),
            ),
          ),
        ),
      ).then(() => undefined),
    );
    await Promise.all(checks.slice(-4));
    process.stdout.write(`\r  ${Math.round((Date.now() - t0) / 1000)} s: ${stats.tasks} tasks, ${stats.nested} nested, ${stats.messages} messages; killed ${stats.workersKilled} workers, ${stats.nodesKilled} nodes   `);
  }
  stop = true;
  await chaos;
  await Promise.all(checks);
  const final = await readClusterStatus(address);
  const restarts = final.actors.reduce((n, a) => n + a.restarts, 0);
  if (partitioned) {
    const netnsAgent = agents.find((a) => a.nodeId === partitioned!.before);
    const rejoined = final.nodes.find((n) => n.pid === netnsAgent?.pid && n.state === 'alive' && n.id !== partitioned!.before);
    partitioned.after = `${final.nodes.find((n) => n.id === partitioned!.before)?.state === 'dead' ? 'declared dead' : 'NOT declared dead'}, ${rejoined ? `rejoined as ${rejoined.id}` : 'did not rejoin'}`;
  }
  // How often each message was applied, counted by the actors themselves in Redis.
  const tallyClient = new Redis(address, { maxRetriesPerRequest: null });
  const tally = await tallyClient.hgetall('chaos:tally');
  tallyClient.disconnect();
  const runs = Number(tally.runs ?? 0);
  let underApplied = 0;
  let overApplied = 0;
  for (let a = 0; a < actors.length; a++) {
    for (let b = 0; b < batch; b++) for (let i = 0; i < 25; i++) if (!Number(tally[`a${a}:${b * 1000 + i}`])) underApplied++;
  }
  for (const m of amo) {
    const applied = Number(tally[`${m.name}:${m.n}`] ?? 0);
    if (applied > 1 || (m.ok && applied !== 1)) overApplied++;
  }
  await Promise.all([...actors, ...atMostOnce].map((a) => kill(a)));

  // At rest: every alive node has all its resources free again.
  let free = false;
  for (let i = 0; i < 100 && !free; i++) {
    const s = await readClusterStatus(address);
    free = s.nodes.filter((n) => n.state === 'alive').every((n) => JSON.stringify(n.free) === JSON.stringify(n.total));
    if (!free) await sleep(100);
  }
  await shutdown();
  for (const a of agents) await stopProcess(a.pid, 3000);
  await stopProcess(head.pid, 3000);
  await stopProcess(redis.pid, 3000);
  await sleep(300);
  const leftover = [...seenWorkers].filter((p) => isRunning(p));
  if (!process.env.NODUS_KEEP_TEST_LOGS) rmSync(dir, { recursive: true, force: true });
  partition?.down();

  const seconds = ((Date.now() - t0) / 1000).toFixed(1);
  console.log(`\n\nchaos${short ? ' (short)' : ''}: ${seconds} s wall time`);
  console.log(`  ran: ${stats.tasks} tasks, ${stats.nested} nested tasks, ${stats.messages} actor messages (4 actors)`);
  console.log(`  task runs: ${runs} for ${stats.tasks + stats.nested} squares (${runs - stats.tasks - stats.nested} retries)`);
  console.log(`  at-least-once actors: messages never applied: ${underApplied}; at-most-once actors: ${amo.filter((m) => m.ok).length} applied once, ${amo.filter((m) => !m.ok).length} failed with ActorDiedError, applied more often than promised: ${overApplied}`);
  console.log(`  killed: ${stats.workersKilled} worker processes, ${stats.nodesKilled} nodes; head restarts: ${stats.headRestarts}; actor restarts: ${restarts}`);
  console.log(
    partitioned
      ? `  partition: node ${partitioned.before} in network namespace ${partition!.ns}, link cut: ${partitioned.after}`
      : `  partition: not run (${whyNoPartition})`,
  );
  console.log(`  resources all free at the end: ${free ? 'yes' : 'NO'}; worker processes left over: ${leftover.length}`);
  console.log(`  loss: ${stats.lost}, wrong results: ${stats.wrong}`);
  if (stats.lost || stats.wrong || underApplied || overApplied || !free || leftover.length || (partitioned && !/declared dead, rejoined/.test(partitioned.after ?? ''))) process.exit(1);
}

main().catch((err) => {
  execFileSync('sh', ['-c', `ip netns del nodus-chaos-${process.pid} 2>/dev/null || true`]);
  console.error('chaos failed:', err);
  process.exit(1);
});

/** After a loss: where each actor stands (record, mailbox, running list), for whoever reads the output. */
async function describeActors(address: string, ids: string[]): Promise<void> {
  const r = new Redis(address, { maxRetriesPerRequest: 2 });
  const keys = new Keys();
  try {
    for (const id of ids) {
      const rec = await r.hgetall(keys.actor(id));
      const [mbox, run, started] = await Promise.all([r.llen(keys.mailbox(id)), r.llen(keys.running(id)), r.hlen(keys.started(id))]);
      console.error(`actor ${id}: state ${rec.state} node ${rec.node} host ${rec.host} pid ${rec.pid} proc ${rec.proc} restarts ${rec.restarts}; mailbox ${mbox}, running ${run}, begun ${started}`);
    }
  } catch (err) {
    console.error('could not describe the actors:', err);
  } finally {
    r.disconnect();
  }
}
