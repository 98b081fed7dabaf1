/** @module Picking the next token from logits: greedy, or seeded sampling with temperature and top-p. */
import { ConfigError } from '../../runtime/errors';

/**
 * A small seeded pseudo-random generator (mulberry32): the same seed gives the same numbers on every machine, which
 * is what makes a sampled completion repeatable. Not for anything secret.
 *
 * @example
 * const rng = new Prng(42);
 * rng.next(); // a number in [0, 1), the same one for every Prng(42)
 */
export class Prng {
  private state: number;
  constructor(seed: number) {
    // Any number is a seed: fold it into 32 bits (fractions and large values included) so each seed is usable.
    this.state = (Math.trunc(seed) ^ Math.trunc(seed / 4294967296)) | 0;
  }
  /** The next number in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/** How to pick tokens. Leave `temperature` at 0 for greedy decoding. */
export interface SamplingOptions {
  /** Divides the logits before the softmax; 0 picks the most likely token (greedy). @default 0 */
  temperature?: number;
  /** Samples only from the smallest set of tokens whose probabilities add up to at least this (nucleus sampling). @default 1 */
  topP?: number;
  /** Seeds the sampler: the same seed, model and prompt give the same tokens. @default a random seed */
  seed?: number;
}

/** Takes one sequence's logits (one row over the vocabulary) and returns the token to append. */
export type Sampler = (logits: Float32Array) => number;

/**
 * The index of the largest logit (the first one on a tie, as transformers' argmax does).
 *
 * @example
 * greedy(new Float32Array([0.1, 2, 0.3])); // 1
 */
export function greedy(logits: Float32Array): number {
  let best = 0;
  let max = logits[0];
  for (let i = 1; i < logits.length; i++) {
    if (logits[i] > max) {
      max = logits[i];
      best = i;
    }
  }
  return best;
}

/**
 * Draws a token from softmax(logits / temperature), restricted to the top-p nucleus, with numbers from `rng`.
 *
 * @example
 * const token = sample(logits, { temperature: 0.8, topP: 0.95 }, new Prng(7));
 */
export function sample(logits: Float32Array, { temperature, topP }: { temperature: number; topP: number }, rng: Prng): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const probs = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += probs[i] = Math.exp((logits[i] - max) / temperature);
  if (topP >= 1) return draw(probs, sum, rng.next());
  // Nucleus: most likely first (ties by index, so the order is the same on every run), keep until the mass reaches topP.
  const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
  let kept = 0;
  let mass = 0;
  while (kept < order.length && mass < topP * sum) mass += probs[order[kept++]];
  let u = rng.next() * mass;
  for (let k = 0; k < kept; k++) {
    u -= probs[order[k]];
    if (u < 0) return order[k];
  }
  return order[kept - 1];
}

function draw(probs: Float64Array, sum: number, r: number): number {
  let u = r * sum;
  for (let i = 0; i < probs.length; i++) {
    u -= probs[i];
    if (u < 0) return i;
  }
  // Rounding can leave a sliver of u: the last token with any probability takes it.
  for (let i = probs.length - 1; i > 0; i--) if (probs[i] > 0) return i;
  return 0;
}

/**
 * Checks the options and returns a sampler for one sequence: greedy when temperature is 0, else seeded sampling
 * (each sequence gets its own sampler, so sequences batched together do not disturb each other's random numbers).
 *
 * @example
 * const pick = createSampler({ temperature: 0.7, topP: 0.9, seed: 1 });
 * const token = pick(logits);
 */
export function createSampler(options: SamplingOptions = {}): Sampler {
  const { temperature = 0, topP = 1, seed } = options;
  if (!Number.isFinite(temperature) || temperature < 0) throw new ConfigError(`temperature must be a number >= 0 (0 = greedy), got ${temperature}`);
  if (!(topP > 0 && topP <= 1)) throw new ConfigError(`topP must be in (0, 1], got ${topP}`);
  if (seed !== undefined && !Number.isFinite(seed)) throw new ConfigError(`seed must be a finite number, got ${seed}`);
  if (temperature === 0) return greedy;
  const rng = new Prng(seed ?? Math.floor(Math.random() * 4294967296));
  return (logits) => sample(logits, { temperature, topP }, rng);
}
