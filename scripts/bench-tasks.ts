/** @module Remote functions of the benchmark (as in Ray's ray_perf.py). */
import { remote } from '../runtime';

export const smallValue = remote(function smallValue() {
  return 'ok';
});
