/** @module my_service's entrypoint and the remote work it fans out (kodosumi's development workflow, in TypeScript). */
import { get, remote, wait } from 'nodus';
import type { Tracer } from 'nodus/serve';

/** Does the "heavy lifting": waits 1 to 3 seconds (NODUS_DEMO_TASK_MS scales it down for tests and the demo). */
export const calculate = remote(async function calculate(i: number) {
  const t0 = new Date();
  const s = 1 + Math.floor(Math.random() * 3);
  await new Promise((r) => setTimeout(r, s * Number(process.env.NODUS_DEMO_TASK_MS ?? 1000)));
  const t1 = new Date();
  return { i, t0, t1, delta: (t1.getTime() - t0.getTime()) / 1000, result: s };
});

export async function execute(inputs: { tasks: number }, tracer: Tracer) {
  let pending = Array.from({ length: inputs.tasks }, (_, i) => calculate.remote(i));
  const total: unknown[] = [];
  while (pending.length) {
    const [done, rest] = await wait(pending, { numReturns: pending.length, timeout: 10 });
    pending = rest;
    if (done.length) {
      const ret = await get(done);
      total.push(...ret);
      await tracer.markdown(`have results \`${JSON.stringify(ret)}\``);
      console.log(`have result ${((total.length / inputs.tasks) * 100).toFixed(2)}%`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return total;
}
