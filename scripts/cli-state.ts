/** @module `nodus list|get|summary|logs`: the state API on the command line, a thin layer over runtime/internal/state-reader. */
import type { Command } from 'commander';
import { NodusError } from '../runtime/errors';
import { connect, waitForRedis } from '../runtime/internal/redis';
import { readSession } from '../runtime/internal/session';
import { FILTER_FIELDS, StateReader, parseFilter, type StateKind } from '../runtime/internal/state-reader';
import type { Resources } from '../runtime/protocol';

const ADDRESS_HELP = 'Redis address of the cluster (default: NODUS_ADDRESS, or the cluster started here)';
const KINDS = Object.keys(FILTER_FIELDS) as StateKind[];

async function withReader<T>(given: string | undefined, fn: (r: StateReader) => Promise<T>): Promise<T> {
  const address = given || process.env.NODUS_ADDRESS || readSession()?.address;
  if (!address) throw new NodusError('No cluster found on this machine. Start one with `npx nodus start --head`, or pass --address redis://HOST:PORT (or set NODUS_ADDRESS).');
  const redis = connect(address, { name: 'nodus:cli' });
  redis.on('error', () => undefined);
  try {
    await waitForRedis(redis, address, 5000);
    return await fn(new StateReader(redis, process.env.NODUS_NAMESPACE || undefined));
  } finally {
    redis.disconnect();
  }
}

function collect(v: string, all: string[]): string[] {
  return [...all, v];
}

function fmtRes(r: Resources): string {
  const keys = Object.keys(r).sort();
  return keys.length ? keys.map((k) => `${k} ${r[k]}`).join(', ') : '-';
}

function when(ms: number | null | undefined): string {
  return ms ? new Date(ms).toISOString().slice(11, 23) : '-';
}

/** A table of rows as aligned columns. */
function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

async function list(kind: StateKind, o: { address?: string; filter: string[]; limit: number; json?: boolean }): Promise<void> {
  const q = { filters: o.filter.map(parseFilter), limit: o.limit };
  await withReader(o.address, async (r) => {
    let rows: object[];
    let text: () => string;
    if (kind === 'tasks') {
      const t = await r.listTasks(q);
      rows = t;
      text = () => table(['TASK', 'NAME', 'STATE', 'NODE', 'WORKER', 'ATTEMPT', 'STARTED', 'MS', 'ERROR'], t.map((x) => [x.taskId, x.name, x.state, x.node || '-', x.worker || '-', String(x.attempt), when(x.startedAt), x.durationMs === null ? '-' : String(x.durationMs), x.error ? `${x.error.name}: ${x.error.message}`.slice(0, 80) : '']));
    } else if (kind === 'actors') {
      const a = await r.listActors(q);
      rows = a;
      text = () => table(['ACTOR', 'CLASS', 'NAME', 'STATE', 'NODE', 'PID', 'RESTARTS', 'DEATH'], a.map((x) => [x.actorId, x.className, x.name ? `${x.namespace}/${x.name}` : '-', x.state, x.node || '-', String(x.pid || '-'), String(x.restarts), x.deathCause?.slice(0, 80) ?? '']));
    } else if (kind === 'objects') {
      const ob = await r.listObjects(q);
      rows = ob;
      text = () => table(['OBJECT', 'REFS', 'OWNER', 'BYTES', 'WHERE'], ob.map((x) => [x.objectId, String(x.refCount), x.owner, String(x.sizeBytes), x.store ? `${x.location} ${x.store}` : x.location]));
    } else if (kind === 'nodes') {
      const n = await r.listNodes(q);
      rows = n;
      text = () => table(['NODE', 'STATE', 'HOST', 'PID', 'FREE', 'TOTAL', 'WORKERS', 'RUNNING'], n.map((x) => [`${x.nodeId}${x.isHeadNode ? ' (head)' : ''}`, x.state, x.host, String(x.pid), fmtRes(x.free), fmtRes(x.total), String(x.workers), String(x.running)]));
    } else {
      const g = await r.listPlacementGroups(q);
      rows = g;
      text = () => table(['GROUP', 'NAME', 'STRATEGY', 'STATE', 'BUNDLES'], g.map((x) => [x.id, x.name || '-', x.strategy, x.state, x.bundles.map((b) => `{${fmtRes(b.resources)}}@${b.node || '-'}`).join(' ')]));
    }
    if (o.json) console.log(JSON.stringify(rows, null, 2));
    else if (!rows.length) console.log(`No ${kind}${o.filter.length ? ' match' : ''}.`);
    else console.log(text());
  });
}

/** Adds `list`, `get`, `summary` and `logs` to the CLI. */
export function addStateCommands(program: Command): void {
  program
    .command('list')
    .description(`List ${KINDS.join(', ')} of a cluster (tasks: those in the task event window, newest first)`)
    .argument('<kind>', KINDS.join(' | '))
    .option('--filter <field=value>', 'keep rows whose field is (=) or is not (!=) value, e.g. state=RUNNING; repeatable', collect, [])
    .option('--limit <n>', 'at most this many rows', (v) => Number(v), 100)
    .option('--json', 'print JSON')
    .option('--address <url>', ADDRESS_HELP)
    .action(async (kind: string, o: { address?: string; filter: string[]; limit: number; json?: boolean }) => {
      if (!KINDS.includes(kind as StateKind)) throw new NodusError(`nodus list takes one of ${KINDS.join(', ')}; got '${kind}'.`);
      await list(kind as StateKind, o);
    });

  program
    .command('get')
    .description('Show one task (with its events) or one actor')
    .argument('<kind>', 'task | actor')
    .argument('<id>', "the task's id (a ref's id) or the actor's id")
    .option('--address <url>', ADDRESS_HELP)
    .action(async (kind: string, id: string, o: { address?: string }) => {
      if (kind !== 'task' && kind !== 'actor') throw new NodusError(`nodus get takes task or actor; got '${kind}'.`);
      await withReader(o.address, async (r) => {
        const found = kind === 'task' ? await r.getTask(id) : await r.getActor(id);
        if (!found) throw new NodusError(kind === 'task' ? `No task ${id} in the task event window (see \`nodus list tasks\`).` : `No actor ${id} (see \`nodus list actors\`).`);
        console.log(JSON.stringify(found, null, 2));
      });
    });

  program
    .command('summary')
    .description('Tasks of the event window grouped by function and state')
    .argument('<kind>', 'tasks')
    .option('--json', 'print JSON')
    .option('--address <url>', ADDRESS_HELP)
    .action(async (kind: string, o: { address?: string; json?: boolean }) => {
      if (kind !== 'tasks') throw new NodusError(`nodus summary takes tasks; got '${kind}'.`);
      await withReader(o.address, async (r) => {
        const rows = await r.summarizeTasks();
        if (o.json) return console.log(JSON.stringify(rows, null, 2));
        if (!rows.length) return console.log('No tasks in the task event window.');
        console.log(table(['FUNCTION', 'TOTAL', 'PENDING', 'RUNNING', 'FINISHED', 'FAILED'], rows.map((x) => [x.name, String(x.total), String(x.byState.PENDING), String(x.byState.RUNNING), String(x.byState.FINISHED), String(x.byState.FAILED)])));
      });
    });

  program
    .command('logs')
    .description('What a task or an actor printed (the last 1000 lines, kept as long as task events)')
    .option('--task <id>', "the task's id")
    .option('--actor <id>', "the actor's id")
    .option('--follow', 'keep printing new lines until the task ends (or, for an actor, until Ctrl-C or its death)')
    .option('--address <url>', ADDRESS_HELP)
    .action(async (o: { task?: string; actor?: string; follow?: boolean; address?: string }) => {
      if (!o.task === !o.actor) throw new NodusError('nodus logs takes --task ID or --actor ID (one of them).');
      const kind = o.task ? 'task' : 'actor';
      const id = (o.task ?? o.actor)!;
      await withReader(o.address, async (r) => {
        let from = 0;
        for (;;) {
          const { lines, next } = await r.logs(kind, id, from);
          for (const l of lines) (l.stream === 'stderr' ? process.stderr : process.stdout).write(`${l.text}\n`);
          from = next;
          if (!o.follow) return;
          const ended = kind === 'task' ? ['FINISHED', 'FAILED'].includes((await r.getTask(id))?.state ?? '') : (await r.getActor(id))?.state === 'DEAD';
          if (ended) {
            // Lines printed just before the end reach Redis with the agent's next write.
            await new Promise((res) => setTimeout(res, 300));
            for (const l of (await r.logs(kind, id, from)).lines) (l.stream === 'stderr' ? process.stderr : process.stdout).write(`${l.text}\n`);
            return;
          }
          await new Promise((res) => setTimeout(res, 500));
        }
      });
    });
}
