/** @module Remote functions of the `npm start` demo's job: they run on the cluster's workers from the job's shipped working dir. */
import { remote } from 'nodus';

/** Squares a number and says which worker did it. */
export const square = remote(function square(x: number) {
  console.log(`square(${x}) on worker pid ${process.pid}`);
  return x * x;
});
