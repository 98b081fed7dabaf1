/** Type tests of nodus/serve: checked by `tsc --noEmit`; a @ts-expect-error that stops erroring fails the build. */
import { expectTypeOf } from 'expect-type';
import { z } from 'zod';
import { ServeAPI, forms as F, InputsError, type EnterRequest, type Model } from 'nodus/serve';

// Stands in for Launch (serve/launch.ts), which these types do not depend on.
declare function launch(request: EnterRequest, entry: string, inputs: unknown): Promise<{ fid: string }>;

export function typeTests(): void {
  // The seed's service, as its author writes it, compiles: a plain model's inputs are untyped.
  const app = new ServeAPI();
  const myModel = F.Model(
    F.Markdown('# My Service\nSpecify the number of tasks to run. Each takes 1 to 3 seconds.'),
    F.Break(),
    F.InputText({ label: 'Number of Tasks', name: 'tasks', value: '25' }),
    F.Submit('Submit'),
    F.Cancel('Cancel'),
  );
  expectTypeOf(myModel).toEqualTypeOf<Model<Record<string, any>>>();
  app.enter(
    { path: '/', model: myModel, summary: 'My Service', description: 'Not so agentic example service.', tags: ['Test'], version: '1.0.0', author: 'you@example.com' },
    async (request, inputs) => {
      expectTypeOf(request).toEqualTypeOf<EnterRequest>();
      expectTypeOf(inputs).toEqualTypeOf<Record<string, any>>();
      const error = new InputsError();
      let tasks = inputs.tasks;
      if (!tasks) error.add({ tasks: 'Please specify the number of concurrent tasks.' });
      if (typeof tasks === 'string') tasks = Number(tasks);
      if (tasks > 500) error.add({ tasks: 'Maximum number of concurrent tasks is 500' });
      if (error.hasErrors()) throw error;
      return launch(request, 'services/my_service/calc:execute', { tasks });
    },
  );

  // An array of elements is a model too, with untyped inputs.
  app.enter({ path: '/plain', model: [F.InputNumber({ name: 'n' }), F.Submit('Go')], summary: 'Plain' }, (_request, inputs) => {
    expectTypeOf(inputs).toEqualTypeOf<Record<string, any>>();
  });

  // A model made from a zod schema types the handler's inputs by the schema.
  const Inputs = z.object({
    tasks: z.number().int().min(1).max(500).default(25).describe('Number of tasks'),
    name: z.string().optional(),
    verbose: z.boolean(),
    mode: z.enum(['fast', 'slow']),
    when: z.date(),
  });
  const zodModel = F.fromZod(Inputs);
  expectTypeOf(zodModel).toEqualTypeOf<Model<z.infer<typeof Inputs>>>();
  app.enter({ path: '/typed', model: zodModel, summary: 'Typed' }, (_request, inputs) => {
    expectTypeOf(inputs).toEqualTypeOf<z.infer<typeof Inputs>>();
    expectTypeOf(inputs.tasks).toEqualTypeOf<number>();
    expectTypeOf(inputs.name).toEqualTypeOf<string | undefined>();
    expectTypeOf(inputs.mode).toEqualTypeOf<'fast' | 'slow'>();
    expectTypeOf(inputs.when).toEqualTypeOf<Date>();
    // @ts-expect-error a field the schema does not have
    void inputs.other;
  });

  // @ts-expect-error fromZod takes an object schema
  F.fromZod(z.string());
  // @ts-expect-error a summary is required
  app.enter({ path: '/x', model: myModel }, () => null);
  // @ts-expect-error a number input's value is a number
  F.InputNumber({ name: 'n', value: '3' });
}
