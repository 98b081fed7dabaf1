/** @module throughput's entrypoint: emits events as fast as asked, the load test of the event path. */
import type { Tracer } from 'nodus/serve';

export async function execute(inputs: { events: number; size: number; every: number }, tracer: Tracer) {
  const body = 'x'.repeat(Math.max(0, inputs.size));
  const t0 = Date.now();
  let pending: Promise<void>[] = [];
  for (let i = 0; i < inputs.events; i++) {
    pending.push(tracer.markdown(`event ${i} ${body}`));
    // Wait for the store every `every` events: the tracer batches what is written in one tick.
    if (pending.length >= inputs.every) {
      await Promise.all(pending);
      pending = [];
    }
  }
  await Promise.all(pending);
  const seconds = (Date.now() - t0) / 1000;
  return { events: inputs.events, seconds, perSecond: Math.round(inputs.events / Math.max(seconds, 1e-3)) };
}
