/** @module The entrypoint the benchmark's services section launches: `n` markdown events, `gapMs` apart (0: as fast as stored). */
import type { Tracer } from '../../serve';

export async function paced(inputs: { n: number; gapMs: number }, tracer: Tracer) {
  let pending: Promise<void>[] = [];
  for (let i = 0; i < inputs.n; i++) {
    pending.push(tracer.markdown(`event ${i}`));
    if (inputs.gapMs) await new Promise((r) => setTimeout(r, inputs.gapMs));
    else if (pending.length >= 200) {
      await Promise.all(pending);
      pending = [];
    }
  }
  await Promise.all(pending);
  return inputs.n;
}
