/**
 * @module The prime count of services/demo/primes.ts for the Piscina peer. The demo keeps isPrime private,
 * so this is a line-for-line copy of its loop: the nodus side runs the demo's own countPrimes task and the
 * Piscina side runs this, the same arithmetic in the same V8. The benchmark checks that both counts agree.
 */
function isPrime(n: number): boolean {
  if (n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** Counts the primes in [lo, hi). */
export function primesBetween(lo: number, hi: number): number {
  let count = 0;
  for (let n = lo; n < hi; n++) if (isPrime(n)) count++;
  return count;
}
