/** @module prime: counts the primes below a limit on the cluster, a markdown table per batch. */
import { join } from 'node:path';
import { ServeAPI, forms as F, Launch } from 'nodus/serve';

export const app = new ServeAPI({ title: 'Prime' });

app.enter(
  {
    path: '/',
    summary: 'Prime counter',
    description: 'Counts the primes below a limit in parallel remote tasks.',
    tags: ['Example'],
    version: '1.0.0',
    author: 'nodus',
    model: F.Model(
      F.Markdown('# Prime counter\nThe range is split into batches of parallel tasks; each batch adds a table.'),
      F.InputNumber({ label: 'Count primes below', name: 'limit', value: 2_000_000, min: 10, max: 100_000_000, required: true }),
      F.InputNumber({ label: 'Batches', name: 'batches', value: 4, min: 1, max: 50, step: 1, required: true }),
      F.InputNumber({ label: 'Tasks per batch', name: 'tasks', value: 8, min: 1, max: 200, step: 1, required: true }),
      F.Submit('Count'),
      F.Cancel('Cancel'),
    ),
  },
  (request, inputs) => Launch(request, `${join(__dirname, 'calc')}:execute`, inputs as { limit: number; batches: number; tasks: number }),
);

if (require.main === module) void app.listen({ port: Number(process.env.PORT ?? 8006) });
