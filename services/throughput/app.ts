/** @module throughput: an execution that emits events as fast as asked (load tests, benchmarks). */
import { join } from 'node:path';
import { ServeAPI, forms as F, Launch } from 'nodus/serve';

export const app = new ServeAPI({ title: 'Throughput' });

app.enter(
  {
    path: '/',
    summary: 'Throughput',
    description: 'Emits markdown events as fast as the cluster stores them.',
    tags: ['Example', 'Load'],
    version: '1.0.0',
    author: 'nodus',
    model: F.Model(
      F.Markdown('# Throughput\nEmits events as fast as they can be stored.'),
      F.InputNumber({ label: 'Events', name: 'events', value: 1000, min: 1, max: 1_000_000, step: 1, required: true }),
      F.InputNumber({ label: 'Bytes per event', name: 'size', value: 16, min: 0, max: 65_536, step: 1 }),
      F.InputNumber({ label: 'Wait for the store every', name: 'every', value: 100, min: 1, max: 10_000, step: 1 }),
      F.Submit('Run'),
    ),
  },
  (request, inputs) => Launch(request, `${join(__dirname, 'calc')}:execute`, { events: Number(inputs.events), size: Number(inputs.size ?? 16), every: Number(inputs.every ?? 100) }),
);

if (require.main === module) void app.listen({ port: Number(process.env.PORT ?? 8008) });
