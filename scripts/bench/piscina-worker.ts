/** @module Piscina worker of the benchmark's CPU-bound peer: one chunk of the prime count per task. */
import { primesBetween } from './primes';

/** Piscina calls this export by name (`run(task, { name: 'countPrimes' })`). */
export function countPrimes({ lo, hi }: { lo: number; hi: number }): number {
  return primesBetween(lo, hi);
}
