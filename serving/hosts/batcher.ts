/** @module What the model hosts share: a dynamic batcher (size- and window-bounded, grouped by key), lazy model loading, and the default device. */
import { ConfigError, getRuntimeContext } from '../../runtime';
import type { Device } from '../models/session';

/** Options of {@link DynamicBatcher}. */
export interface BatcherOptions {
  /** Most items in one run. */
  maxBatchSize: number;
  /** How long the oldest waiting item waits for others to join its batch, in ms. */
  windowMs: number;
}

/** Counts of what a batcher ran: enough to see whether concurrent requests shared runs. */
export interface BatcherStats {
  /** Runs of the batch function. */
  batches: number;
  /** Items run, over all batches. */
  items: number;
  /** The largest batch so far. */
  largest: number;
  /** How many batches had each size: `{ 1: 3, 8: 2 }`. */
  sizes: Record<number, number>;
}

interface Pending<I, O> {
  item: I;
  resolve: (out: O) => void;
  reject: (err: unknown) => void;
}

interface Group<I, O> {
  pending: Pending<I, O>[];
  /** When the group's oldest item arrived. */
  since: number;
}

/**
 * Gathers items submitted from concurrent calls into batches: items with the same key may share a run (for images:
 * the same tensor size). A batch runs when its group is full, or when the window of its oldest item has passed;
 * one batch runs at a time (the model is one session), so items that arrive while one runs form the next batch.
 * Oldest group first, so a steady stream of one size cannot starve another.
 *
 * @example
 * const batcher = new DynamicBatcher((xs: number[]) => Promise.resolve(xs.map((x) => x * 2)), { maxBatchSize: 32, windowMs: 5 });
 * await Promise.all([batcher.submit('a', 1), batcher.submit('a', 2)]); // [2, 4], one run
 */
export class DynamicBatcher<I, O> {
  private readonly groups = new Map<string, Group<I, O>>();
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly counts: BatcherStats = { batches: 0, items: 0, largest: 0, sizes: {} };

  constructor(
    private readonly run: (items: I[]) => Promise<O[]>,
    private readonly options: BatcherOptions,
  ) {}

  /** Queues one item; resolves with its output when its batch has run (rejects with the batch's error). */
  submit(key: string, item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      let group = this.groups.get(key);
      if (!group) this.groups.set(key, (group = { pending: [], since: Date.now() }));
      group.pending.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** What has run so far. */
  stats(): BatcherStats {
    return { ...this.counts, sizes: { ...this.counts.sizes } };
  }

  private schedule(): void {
    if (this.running || this.groups.size === 0) return;
    const [oldestKey, oldest] = this.groups.entries().next().value as [string, Group<I, O>];
    const wait = oldest.since + this.options.windowMs - Date.now();
    let key: string | undefined;
    if (wait <= 0) key = oldestKey;
    else for (const [k, g] of this.groups) if (g.pending.length >= this.options.maxBatchSize) key ??= k;
    if (key !== undefined) {
      void this.runGroup(key);
      return;
    }
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.schedule();
    }, wait);
  }

  private async runGroup(key: string): Promise<void> {
    const group = this.groups.get(key)!;
    const batch = group.pending.splice(0, this.options.maxBatchSize);
    // Left-over items of a full group start a new window: they move behind the other groups.
    this.groups.delete(key);
    if (group.pending.length) this.groups.set(key, { pending: group.pending, since: Date.now() });
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.running = true;
    const c = this.counts;
    c.batches++;
    c.items += batch.length;
    c.largest = Math.max(c.largest, batch.length);
    c.sizes[batch.length] = (c.sizes[batch.length] ?? 0) + 1;
    try {
      const out = await this.run(batch.map((p) => p.item));
      if (out.length !== batch.length) throw new Error(`a batch of ${batch.length} gave ${out.length} outputs`);
      batch.forEach((p, i) => p.resolve(out[i]));
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      this.running = false;
      this.schedule();
    }
  }
}

/**
 * Loads a model once, starting at once (so the first request does not pay for it) and keeping the one promise:
 * every call awaits the same load, and a load error reaches each caller rather than killing the actor.
 *
 * @example
 * const model = new LazyModel(() => CausalLM.load('tiny-vlm'));
 * const llm = await model.get();
 */
export class LazyModel<M> {
  private readonly loading: Promise<M>;
  constructor(load: () => Promise<M>) {
    this.loading = Promise.resolve().then(load);
    // Nobody may be waiting yet: the error is kept for the first caller, not reported as unhandled.
    this.loading.catch(() => undefined);
  }
  /** The model, once loaded; rejects with the load error. */
  get(): Promise<M> {
    return this.loading;
  }
}

/**
 * The device a host uses when its config names none: 'cuda' when this process was given GPUs, else 'cpu'.
 * The runtime does not (yet) tell an actor which GPUs it holds, so this reads what CUDA itself reads:
 * `CUDA_VISIBLE_DEVICES` naming at least one device. Give `device` in the config to be explicit.
 *
 * @example
 * const device = config.device ?? defaultDevice();   // 'cpu' unless CUDA_VISIBLE_DEVICES=0 (or more) is set
 */
export function defaultDevice(): Device {
  const visible = process.env.CUDA_VISIBLE_DEVICES?.trim();
  return visible && visible !== '-1' && visible !== 'NoDevFiles' ? 'cuda' : 'cpu';
}

/**
 * Checks a host config's common fields (modelId, device, maxBatchSize, batchWindowMs) and rejects unknown ones;
 * throws ConfigError naming the field and the valid values.
 *
 * @example
 * checkHostConfig('LLMHost', config, ['modelId', 'device', 'maxBatchSize']);
 */
export function checkHostConfig(what: string, config: Record<string, unknown>, valid: readonly string[]): void {
  if (typeof config !== 'object' || config === null) throw new ConfigError(`${what} takes a config object: { modelId, ... }`);
  const unknown = Object.keys(config).filter((k) => !valid.includes(k));
  if (unknown.length) throw new ConfigError(`${what}: unknown config field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; valid ones are ${valid.join(', ')}`);
  if (typeof config.modelId !== 'string' || !config.modelId) throw new ConfigError(`${what}: modelId must be a model name under NODUS_MODEL_DIR or a path`);
  if (config.device !== undefined && config.device !== 'cpu' && config.device !== 'cuda') {
    throw new ConfigError(`${what}: device must be 'cpu' or 'cuda', not ${JSON.stringify(config.device)}`);
  }
  for (const field of ['maxBatchSize', 'batchWindowMs']) {
    const v = config[field];
    const min = field === 'maxBatchSize' ? 1 : 0;
    if (v !== undefined && !(typeof v === 'number' && Number.isInteger(v) && v >= min)) {
      throw new ConfigError(`${what}: ${field} must be a whole number >= ${min}, got ${JSON.stringify(v)}`);
    }
  }
}

/**
 * Where a host runs, for ready(): its node and process (the pid a test or an operator can signal).
 *
 * @example
 * return { device, modelId, ...hostPlace() };
 */
export function hostPlace(): { node: string; pid: number } {
  return { node: getRuntimeContext().nodeId ?? '', pid: process.pid };
}
