/**
 * @module nodus/metrics: your own Prometheus metrics, made anywhere (a task's module, an actor, the driver) and added
 * up across every process of the cluster in the head's /metrics. prom-client's Counter, Gauge and Histogram, kept in
 * the process's registry that nodus pushes.
 */
import * as client from 'prom-client';
import { processRegistry } from './internal/metrics';

/** Options as prom-client takes them, less `registers`: nodus puts each metric in its process's registry. */
export type CounterConfiguration<T extends string> = Omit<client.CounterConfiguration<T>, 'registers'>;
export type GaugeConfiguration<T extends string> = Omit<client.GaugeConfiguration<T>, 'registers'>;
export type HistogramConfiguration<T extends string> = Omit<client.HistogramConfiguration<T>, 'registers'>;

/**
 * A count that only goes up; the cluster's /metrics shows the sum over processes.
 *
 * @example
 * // tasks.ts, at the top level of the module that defines the remote function
 * const processed = new Counter({ name: 'app_items_processed_total', help: 'Items processed.', labelNames: ['kind'] });
 * export const work = remote(function work(kind: string) { processed.inc({ kind }); });
 */
export class Counter<T extends string = string> extends client.Counter<T> {
  constructor(config: CounterConfiguration<T>) {
    super({ ...config, registers: [processRegistry()] });
  }
}

/**
 * A value that goes up and down; summed over processes unless `aggregator` says otherwise ('max', 'min', 'average', 'first').
 *
 * @example
 * const queueLen = new Gauge({ name: 'app_queue_length', help: 'Items waiting.', aggregator: 'max' });
 * queueLen.set(12);
 */
export class Gauge<T extends string = string> extends client.Gauge<T> {
  constructor(config: GaugeConfiguration<T>) {
    super({ ...config, registers: [processRegistry()] });
  }
}

/**
 * Observations in buckets; buckets are summed over processes.
 *
 * @example
 * const seconds = new Histogram({ name: 'app_step_seconds', help: 'Step time.', buckets: [0.01, 0.1, 1, 10] });
 * const end = seconds.startTimer(); step(); end();
 */
export class Histogram<T extends string = string> extends client.Histogram<T> {
  constructor(config: HistogramConfiguration<T>) {
    super({ ...config, registers: [processRegistry()] });
  }
}
