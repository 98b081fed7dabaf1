/** @module prime's entrypoint: counts primes in parallel remote tasks and writes a markdown table per batch. */
import { get, remote } from 'nodus';
import type { Tracer } from 'nodus/serve';
import { isPrime } from '../demo/primes';

/** The primes in [lo, hi). */
export const countPrimes = remote(function countPrimes(lo: number, hi: number) {
  let count = 0;
  for (let n = lo; n < hi; n++) if (isPrime(n)) count++;
  return { lo, hi, count };
});

/**
 * A sync entrypoint (no `async`): it fans out one batch of tasks after the other and chains the tables onto
 * the promise it returns, which becomes the final result.
 */
export function execute(inputs: { limit: number; batches: number; tasks: number }, tracer: Tracer) {
  const { limit, batches, tasks } = inputs;
  const per = Math.ceil(limit / (batches * tasks));
  let chain: Promise<number> = Promise.resolve(0);
  for (let b = 0; b < batches; b++) {
    chain = chain.then(async (total) => {
      const refs = Array.from({ length: tasks }, (_, t) => {
        const lo = (b * tasks + t) * per;
        return countPrimes.remote(lo, Math.min(lo + per, limit));
      });
      const rows = await get(refs);
      const sum = rows.reduce((a, r) => a + r.count, 0);
      await tracer.markdown(
        [`### Batch ${b + 1} of ${batches}`, '', '| from | to | primes |', '|---:|---:|---:|', ...rows.map((r) => `| ${r.lo} | ${r.hi} | ${r.count} |`), '', `**${total + sum} primes so far**`].join('\n'),
      );
      await tracer.progress(b + 1, batches, 'batches');
      return total + sum;
    });
  }
  return chain.then((primes) => ({ limit, primes }));
}
