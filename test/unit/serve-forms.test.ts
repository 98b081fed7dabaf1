import { z } from 'zod';
import { ConfigError } from '../../runtime';
import { forms as F } from '../../serve';

describe('forms', () => {
  test('a model lists its elements as the FormElement JSON of the wire contract', () => {
    const model = F.Model(
      F.Markdown('# My Service\nSpecify the number of tasks to run.'),
      F.Break(),
      F.InputText({ label: 'Number of Tasks', name: 'tasks', value: '25' }),
      F.Submit('Submit'),
      F.Cancel('Cancel'),
    );
    const expected = [
      { type: 'markdown', text: '# My Service\nSpecify the number of tasks to run.' },
      { type: 'break' },
      { type: 'text', label: 'Number of Tasks', name: 'tasks', value: '25' },
      { type: 'submit', text: 'Submit' },
      { type: 'cancel', text: 'Cancel' },
    ];
    expect(model.elements).toEqual(expected);
    expect(JSON.parse(JSON.stringify(model))).toEqual(expected);
  });

  test('every element kind carries its options', () => {
    const model = F.Model(
      F.HTML('<b>hi</b>'),
      F.HR(),
      F.Errors(),
      F.InputPassword({ name: 'key', required: true }),
      F.InputArea({ name: 'prompt', rows: 5, maxLength: 100, placeholder: 'Ask' }),
      F.InputNumber({ name: 'n', min: 1, max: 10, step: 1, value: 3 }),
      F.InputDate({ name: 'd', min: '2024-01-01' }),
      F.InputTime({ name: 't', value: '09:00' }),
      F.InputDateTime({ name: 'dt' }),
      F.Checkbox({ name: 'ok', option: 'I agree', value: true }),
      F.Select({ name: 's', multiple: true, options: [F.InputOption({ name: 'a', label: 'A' }), F.InputOption({ name: 'b', value: true })] }),
      F.InputFiles({ name: 'docs', multiple: true, accept: '.pdf' }),
      F.Action({ name: 'mode', text: 'Fast', value: 'fast' }),
      F.Action({ name: 'mode', text: 'Slow', value: 'slow' }),
    );
    expect(model.elements).toEqual([
      { type: 'html', text: '<b>hi</b>' },
      { type: 'hr' },
      { type: 'errors' },
      { type: 'password', name: 'key', required: true },
      { type: 'textarea', name: 'prompt', rows: 5, maxLength: 100, placeholder: 'Ask' },
      { type: 'number', name: 'n', min: 1, max: 10, step: 1, value: 3 },
      { type: 'date', name: 'd', min: '2024-01-01' },
      { type: 'time', name: 't', value: '09:00' },
      { type: 'datetime', name: 'dt' },
      { type: 'checkbox', name: 'ok', option: 'I agree', value: true },
      { type: 'select', name: 's', multiple: true, options: [{ name: 'a', label: 'A' }, { name: 'b', label: 'b', value: true }] },
      { type: 'files', name: 'docs', multiple: true, accept: '.pdf' },
      { type: 'action', name: 'mode', text: 'Fast', value: 'fast' },
      { type: 'action', name: 'mode', text: 'Slow', value: 'slow' },
    ]);
  });

  test('indented Markdown, as in a template literal, loses its common indentation', () => {
    const md = F.Markdown(`
      # My Service
      Specify the number of tasks to run.

          indented code stays indented
    `);
    expect(md).toEqual({ type: 'markdown', text: '# My Service\nSpecify the number of tasks to run.\n\n    indented code stays indented' });
    expect(F.Markdown('# Title\n    continued').text).toBe('# Title\ncontinued');
  });

  test('two inputs with one name are refused, naming the name', () => {
    expect(() => F.Model(F.InputText({ name: 'tasks' }), F.InputNumber({ name: 'tasks' }))).toThrow(ConfigError);
    expect(() => F.Model(F.InputText({ name: 'tasks' }), F.InputNumber({ name: 'tasks' }))).toThrow(/named "tasks".*unique/);
    expect(() => F.Model(F.InputText({ name: 'mode' }), F.Action({ name: 'mode', text: 'Go', value: 'go' }))).toThrow(/named "mode"/);
  });

  test('options an element does not have are refused, listing the ones it has', () => {
    expect(() => F.InputText({ name: 'a', min_value: 3 } as never)).toThrow(/no option "min_value"; its options are name, label/);
  });

  test('an input without a name, inconsistent bounds or a broken pattern is refused', () => {
    expect(() => F.InputText({} as never)).toThrow(/needs a name/);
    expect(() => F.InputNumber({ name: 'n', min: 5, max: 1 })).toThrow(/min \(5\) is above max \(1\)/);
    expect(() => F.InputText({ name: 't', pattern: '(' })).toThrow(/not a valid regular expression/);
    expect(() => F.Select({ name: 's', options: [] })).toThrow(/needs options/);
    expect(() => F.Model({ type: 'bogus' } as never)).toThrow(/form elements made by the F\.\* functions/);
  });

  test('fromZod makes an input per field, with labels, defaults, bounds and required flags, then Submit and Cancel', () => {
    const model = F.fromZod(
      z.object({
        tasks: z.number().int().min(1).max(500).default(25).describe('Number of tasks'),
        name: z.string().max(20).regex(/^[a-z]+$/),
        note: z.string().optional(),
        verbose: z.boolean().default(false).describe('Verbose'),
        mode: z.enum(['fast', 'slow']).default('fast'),
        tags: z.array(z.enum(['a', 'b'])),
        day: z.iso.date(),
        at: z.iso.time().optional(),
        start: z.iso.datetime({ local: true }).optional(),
        when: z.date(),
      }),
      { before: [F.Markdown('# Typed')] },
    );
    expect(model.schema).toBeDefined();
    expect(model.elements).toEqual([
      { type: 'markdown', text: '# Typed' },
      { type: 'number', name: 'tasks', label: 'Number of tasks', value: 25, min: 1, max: 500, step: 1 },
      { type: 'text', name: 'name', label: 'name', required: true, maxLength: 20, pattern: '^[a-z]+$' },
      { type: 'text', name: 'note', label: 'note' },
      { type: 'checkbox', name: 'verbose', label: 'Verbose', value: false },
      { type: 'select', name: 'mode', label: 'mode', value: 'fast', options: [{ name: 'fast', label: 'fast' }, { name: 'slow', label: 'slow' }] },
      { type: 'select', name: 'tags', label: 'tags', required: true, multiple: true, options: [{ name: 'a', label: 'a' }, { name: 'b', label: 'b' }] },
      { type: 'date', name: 'day', label: 'day', required: true },
      { type: 'time', name: 'at', label: 'at' },
      { type: 'datetime', name: 'start', label: 'start' },
      { type: 'date', name: 'when', label: 'when', required: true },
      { type: 'submit', text: 'Submit' },
      { type: 'cancel', text: 'Cancel' },
    ]);
  });

  test('fromZod refuses a field it cannot show as an input, naming it', () => {
    expect(() => F.fromZod(z.object({ nested: z.object({ a: z.string() }) }))).toThrow(/"nested" \(a zod object\).*F\.Model/);
  });
});
