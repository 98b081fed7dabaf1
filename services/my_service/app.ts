/** @module my_service's endpoint: a form for the number of tasks, validated, that Launches the entrypoint. */
import { ServeAPI, forms as F, InputsError, Launch } from 'nodus/serve';

export const app = new ServeAPI({ title: 'My Service' });
const myModel = F.Model(
  F.Markdown('# My Service\nSpecify the number of tasks to run. Each takes 1 to 3 seconds.'),
  F.Break(),
  F.InputText({ label: 'Number of Tasks', name: 'tasks', value: '25' }),
  F.Submit('Submit'),
  F.Cancel('Cancel'),
);

app.enter(
  { path: '/', model: myModel, summary: 'My Service', description: 'Not so agentic example service.', tags: ['Test'], version: '1.0.0', author: 'you@example.com' },
  async (request, inputs) => {
    const error = new InputsError();
    let tasks = inputs.tasks;
    if (!tasks) error.add({ tasks: 'Please specify the number of concurrent tasks.' });
    if (typeof tasks === 'string') tasks = Number(tasks);
    if (tasks > 500) error.add({ tasks: 'Maximum number of concurrent tasks is 500' });
    if (error.hasErrors()) throw error;
    return Launch(request, 'services/my_service/calc:execute', { tasks });
  },
);

if (require.main === module) void app.listen({ port: Number(process.env.PORT ?? 8005) });
