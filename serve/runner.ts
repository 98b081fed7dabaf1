/**
 * @module The runner: a detached actor, one per execution, named by its fid, that runs the entrypoint
 * `execute(inputs, tracer)` on the cluster, turns its output into events and ends the execution.
 */
import { pathToFileURL } from 'node:url';
import { getActor, getRuntimeContext, kill, remote } from '../runtime';
import { Keys, type LogMessage } from '../runtime/protocol';
import { RUNNER_NAMESPACE } from '../runtime/protocol/services';
import { connect } from '../runtime/internal/redis';
import { serviceLink } from './cluster';
import { readExecution, setStatus } from './store';
import { EventWriter, makeTracer } from './tracer';

/** The entrypoint's function: `module:export`, the module an absolute path (or file URL). */
async function loadEntry(entry: string): Promise<(inputs: unknown, tracer: unknown) => unknown> {
  const at = entry.lastIndexOf(':');
  const [file, name] = at > 1 ? [entry.slice(0, at), entry.slice(at + 1)] : [entry, 'execute'];
  const mod = (await import(file.startsWith('file:') ? file : pathToFileURL(file).href)) as Record<string, unknown>;
  const fn = mod[name] ?? (mod.default as Record<string, unknown> | undefined)?.[name];
  if (typeof fn !== 'function') throw new TypeError(`${file} has no exported function '${name}' (the entrypoint ${entry}); export it, e.g. \`export async function ${name}(inputs, tracer) {...}\`.`);
  return fn as (inputs: unknown, tracer: unknown) => unknown;
}

/**
 * Runs one execution. Its process holds nothing else, so everything it prints is the execution's output;
 * what the tasks it starts print reaches it on its log channel and becomes output too.
 */
export class Runner {
  /** Answers while the process lives: the gateway's liveness check. */
  ping(): string {
    return 'ok';
  }

  async run(fid: string, entry: string, inputs: unknown): Promise<string> {
    const { redis, keys, address } = await serviceLink();
    const writer = new EventWriter(redis, keys, fid);
    const abort = new AbortController();
    const sub = connect(address, { blocking: true, name: `nodus:runner:${fid}` });
    sub.on('error', () => undefined);
    const runtimeKeys = new Keys(process.env.NODUS_NAMESPACE || undefined);
    const actorId = getRuntimeContext().actorId ?? '';
    sub.on('message', (channel: string, message: string) => {
      if (channel === keys.cancelChannel) {
        if (message === fid) abort.abort(new Error('cancelled'));
        return;
      }
      // Output of the tasks this runner started, forwarded by their nodes to their owner: this actor.
      for (const m of JSON.parse(message) as LogMessage[]) void writer.write({ kind: m.stream, data: `${m.prefix} ${m.text}` }).catch(() => undefined);
    });
    await sub.subscribe(keys.cancelChannel, runtimeKeys.logs(actorId));
    const restore = captureOutput((stream, text) => void writer.write({ kind: stream, data: text }).catch(() => undefined));
    let status = 'finished';
    let failed: Error | undefined;
    try {
      if ((await readExecution(redis, keys, fid))?.cancelRequested) abort.abort(new Error('cancelled'));
      await setStatus(redis, keys, fid, 'running');
      const execute = await loadEntry(entry);
      const result = await execute(inputs, makeTracer(writer, abort.signal));
      await writer.flush();
      await setStatus(redis, keys, fid, 'finished', { before: [{ kind: 'final', data: result }] });
    } catch (err) {
      await writer.flush().catch(() => undefined);
      const e = err instanceof Error ? err : new Error(String(err));
      if (abort.signal.aborted) {
        status = 'cancelled';
        await setStatus(redis, keys, fid, 'cancelled', { message: 'cancelled' });
      } else {
        status = 'error';
        failed = e;
        // The message for everyone; the stack for the owner only (the gateway strips it from others' reads).
        await setStatus(redis, keys, fid, 'error', { message: `${e.name}: ${e.message}`, before: [{ kind: 'error', data: { name: e.name, message: e.message, stack: e.stack } }] });
      }
    } finally {
      restore();
      sub.disconnect();
      // The service's own log gets the whole error (after restore(): not an event, which others may read).
      if (failed) console.error(`execution ${fid} failed:`, failed.stack ?? failed);
      // A detached actor lives until killed: this one's work is done once its result is reported.
      setTimeout(() => void getActor(fid, { namespace: RUNNER_NAMESPACE }).then((h) => kill(h), () => undefined), 200).unref();
    }
    return status;
  }
}

/** The runner actor: no CPU of its own (its tasks take theirs), never restarted (an execution runs once). */
export const RunnerActor = remote(Runner, { numCpus: 0, maxRestarts: 0, maxTaskRetries: 0, maxConcurrency: 4 });

/** Tees what the process writes to stdout/stderr into `sink`, as well as where it went before. */
function captureOutput(sink: (stream: 'stdout' | 'stderr', text: string) => void): () => void {
  const saved = { stdout: process.stdout.write, stderr: process.stderr.write };
  for (const name of ['stdout', 'stderr'] as const) {
    const stream = process[name];
    const original = saved[name];
    stream.write = function (this: NodeJS.WriteStream, chunk: string | Uint8Array, ...rest: unknown[]) {
      sink(name, typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      return (original as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof stream.write;
  }
  return () => {
    process.stdout.write = saved.stdout;
    process.stderr.write = saved.stderr;
  };
}
