/** @module Remote functions of the `npm start` demo: count primes in a range, sum a large array, and say where it ran. */
import { getRuntimeContext, remote } from '../../runtime';

/** Trial division: enough for the demo's ranges. */
export function isPrime(n: number): boolean {
  if (n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** Counts the primes in [lo, hi) and reports the node and worker that did it. */
export const countPrimes = remote(function countPrimes(lo: number, hi: number) {
  let count = 0;
  for (let n = lo; n < hi; n++) if (isPrime(n)) count++;
  const ctx = getRuntimeContext();
  return { lo, hi, count, node: ctx.nodeId ?? '?', pid: process.pid };
});

/** Sums a large array (read from the node's object store) and reports where. */
export const sumOf = remote(function sumOf(values: Float64Array) {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i];
  return { sum, node: getRuntimeContext().nodeId ?? '?', pid: process.pid };
});
