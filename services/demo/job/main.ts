/**
 * @module The `npm start` demo's job driver (`nodus job submit --working-dir services/demo/job -- tsx main.ts`): it
 * joins the cluster that runs it (NODUS_ADDRESS is set for a job), runs four tasks and prints their sum.
 */
import { get, init, shutdown } from 'nodus';
import { square } from './tasks';

async function main(): Promise<void> {
  await init();
  const squares = await get([1, 2, 3, 4].map((i) => square.remote(i)));
  console.log(`sum of squares: ${squares.reduce((a, b) => a + b, 0)} (the driver ran in ${process.cwd()})`);
  await shutdown();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
