/** @module The tracer an entrypoint writes its execution's events with: markdown, results, progress, and the cancel signal. */
import type { Redis } from 'ioredis';
import type { ServiceKeys } from '../runtime/protocol/services';
import { appendEvents, type EventInput } from './store';

/**
 * What `execute(inputs, tracer)` gets: every call appends an event to the execution's stream (kept in Redis, so
 * it survives a gateway restart and any reader can replay it), and resolves once the event is stored. Calls made
 * in the same tick are stored together.
 *
 * @example
 * export async function execute(inputs: { n: number }, tracer: Tracer) {
 *   await tracer.markdown(`# Counting to ${inputs.n}`);
 *   for (let i = 1; i <= inputs.n && !tracer.signal.aborted; i++) await tracer.progress(i, inputs.n);
 *   return { counted: inputs.n };
 * }
 */
export interface Tracer {
  /** Markdown, rendered (sanitized) by the panel. */
  markdown(text: string): Promise<void>;
  /** HTML, shown sanitized. */
  html(text: string): Promise<void>;
  /** Plain text, shown preformatted. */
  text(text: string): Promise<void>;
  /** An intermediate result: any value a task may return (shown as JSON). */
  result(value: unknown): Promise<void>;
  debug(text: string): Promise<void>;
  warning(text: string): Promise<void>;
  /** A link or button the panel offers. */
  action(action: { label: string; value?: string; url?: string }): Promise<void>;
  /** Progress for the panel's bar: `done` of `total`. */
  progress(done: number, total: number, label?: string): Promise<void>;
  /** Aborted when the execution is cancelled (DELETE /outputs/{fid}): stop early. */
  readonly signal: AbortSignal;
  /** The execution's id. */
  readonly fid: string;
}

/** Batches events per tick into one pipeline: a loop of tracer calls becomes one round trip. */
export class EventWriter {
  private batch: { e: EventInput; done: () => void; fail: (err: unknown) => void }[] = [];
  private scheduled = false;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly redis: Redis,
    private readonly keys: ServiceKeys,
    readonly fid: string,
  ) {}

  write(e: EventInput): Promise<void> {
    return new Promise((done, fail) => {
      this.batch.push({ e, done, fail });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        const batch = this.batch;
        this.batch = [];
        // In order: one batch after the other.
        this.chain = this.chain.then(() =>
          appendEvents(this.redis, this.keys, this.fid, batch.map((b) => b.e)).then(
            () => batch.forEach((b) => b.done()),
            (err) => batch.forEach((b) => b.fail(err)),
          ),
        );
      });
    });
  }

  /** Resolves once every event written so far is stored. */
  async flush(): Promise<void> {
    while (this.scheduled || this.batch.length) await new Promise((r) => setImmediate(r));
    await this.chain;
  }
}

export function makeTracer(writer: EventWriter, signal: AbortSignal): Tracer {
  const str = (kind: EventInput['kind']) => (text: string) => writer.write({ kind, data: String(text) });
  return {
    fid: writer.fid,
    signal,
    markdown: str('markdown'),
    html: str('html'),
    text: str('text'),
    debug: str('debug'),
    warning: str('warning'),
    result: (value) => writer.write({ kind: 'result', data: value }),
    action: (a) => writer.write({ kind: 'action', data: a }),
    progress: (done, total, label) => writer.write({ kind: 'progress', data: label === undefined ? { done, total } : { done, total, label } }),
  };
}
