import { z } from 'zod';
import { InputsError, forms as F } from '../../serve';
import { inputsJsonSchema, parseInputs } from '../../serve/inputs';

const parse = (model: F.Model<unknown>, body: Record<string, unknown>) => parseInputs(model.elements, body, model.schema);

describe('parseInputs', () => {
  const model = F.Model(
    F.InputText({ name: 'title', minLength: 2, maxLength: 5, pattern: '[a-z]+' }),
    F.InputNumber({ name: 'tasks', min: 1, max: 500, step: 1 }),
    F.InputNumber({ name: 'ratio', min: 0, max: 1, step: 0.1 }),
    F.Checkbox({ name: 'verbose' }),
    F.InputDate({ name: 'day', min: '2024-01-01' }),
    F.InputTime({ name: 'at' }),
    F.InputDateTime({ name: 'start' }),
    F.Select({ name: 'mode', options: [F.InputOption({ name: 'fast' }), F.InputOption({ name: 'slow' })] }),
    F.Select({ name: 'tags', multiple: true, options: [F.InputOption({ name: 'a' }), F.InputOption({ name: 'b' })] }),
    F.Submit('Go'),
  );

  test('posted strings become numbers, booleans and choices by their elements; unknown fields are kept as given', () => {
    const r = parse(model, {
      title: 'abc',
      tasks: '25',
      ratio: 0.3,
      verbose: 'on',
      day: '2024-02-29',
      at: '13:45',
      start: '2024-12-31T13:45',
      mode: 'slow',
      tags: 'a',
      extra: { any: 'thing' },
    });
    expect(r.errors).toEqual({});
    expect(r.inputs).toEqual({
      title: 'abc',
      tasks: 25,
      ratio: 0.3,
      verbose: true,
      day: '2024-02-29',
      at: '13:45',
      start: '2024-12-31T13:45',
      mode: 'slow',
      tags: ['a'],
      extra: { any: 'thing' },
    });
  });

  test('a missing checkbox is false, empty optional numbers and dates are left out, and JSON values for text pass through', () => {
    const r = parse(model, { title: '', tasks: '', day: '' });
    expect(r.errors).toEqual({});
    expect(r.inputs).toEqual({ title: '', verbose: false, tags: [] });
    expect(parse(F.Model(F.InputText({ name: 'tasks', value: '25' })), { tasks: 100 })).toEqual({ inputs: { tasks: 100 }, errors: {} });
  });

  test.each([
    [{ tasks: '501' }, 'tasks', 'Must be at most 500.'],
    [{ tasks: 0 }, 'tasks', 'Must be at least 1.'],
    [{ tasks: '2.5' }, 'tasks', 'Must be 1 plus a multiple of 1.'],
    [{ tasks: 'many' }, 'tasks', 'Must be a number.'],
    [{ ratio: 0.35 }, 'ratio', 'Must be a multiple of 0.1.'],
    [{ title: 'a' }, 'title', 'Must be at least 2 characters long.'],
    [{ title: 'abcdef' }, 'title', 'Must be at most 5 characters long.'],
    [{ title: 'ab1' }, 'title', 'Does not have the expected format.'],
    [{ title: ['a', 'b'] }, 'title', 'Must be a single text value.'],
    [{ day: '2024-02-30' }, 'day', 'Must be a date written as YYYY-MM-DD, like 2024-12-31.'],
    [{ day: '31.12.2024' }, 'day', 'Must be a date written as YYYY-MM-DD, like 2024-12-31.'],
    [{ day: '2023-12-31' }, 'day', 'Must be 2024-01-01 or later.'],
    [{ at: '25:00' }, 'at', 'Must be a time written as HH:MM or HH:MM:SS, like 13:45.'],
    [{ start: '2024-12-31 13:45' }, 'start', 'Must be a date and time written as YYYY-MM-DDTHH:MM, like 2024-12-31T13:45.'],
    [{ verbose: 'maybe' }, 'verbose', 'Must be checked or not: true or false.'],
    [{ mode: 'medium' }, 'mode', 'Must be one of "fast", "slow".'],
    [{ mode: ['fast', 'slow'] }, 'mode', 'Choose only one option.'],
    [{ tags: ['a', 'c'] }, 'tags', 'Each choice must be one of "a", "b".'],
  ])('posting %j gives the field a message a user understands', (body, field, message) => {
    const r = parse(model, body);
    expect(r.errors).toEqual({ [field]: [message] });
  });

  test('required inputs must be given, and a required checkbox checked', () => {
    const m = F.Model(F.InputText({ name: 'a', required: true }), F.InputNumber({ name: 'b', required: true }), F.Checkbox({ name: 'c', required: true }));
    expect(parse(m, { a: '', b: null }).errors).toEqual({ a: ['This field is required.'], b: ['This field is required.'], c: ['Must be checked.'] });
    expect(parse(m, { a: 'x', b: 1, c: true })).toEqual({ inputs: { a: 'x', b: 1, c: true }, errors: {} });
  });

  test('a pattern must match the whole value, as in HTML', () => {
    const m = F.Model(F.InputText({ name: 'code', pattern: '[A-Z]{3}' }));
    expect(parse(m, { code: 'ABC' }).errors).toEqual({});
    expect(parse(m, { code: 'xABCx' }).errors).toEqual({ code: ['Does not have the expected format.'] });
  });

  test('a JSON key "__proto__" does not change the prototype of the inputs', () => {
    const r = parse(F.Model(), JSON.parse('{"__proto__": {"polluted": true}, "a": 1}'));
    expect(r.inputs).toEqual({ a: 1 });
    expect((r.inputs as { polluted?: boolean }).polluted).toBeUndefined();
  });
});

describe('parseInputs with a zod model', () => {
  const Inputs = z.object({
    tasks: z.number().int().min(1).max(500).default(25),
    name: z.string().min(1).refine((s) => s !== 'admin', 'That name is taken.'),
    mode: z.enum(['fast', 'slow']).default('fast'),
    when: z.date().optional(),
    even: z.number().optional().refine((n) => n === undefined || n % 2 === 0, { message: 'Must be even.' }),
  });
  const model = F.fromZod(Inputs);

  test('the handler gets the schema output: defaults applied, a date field as a Date, unknown keys dropped', () => {
    const r = parse(model, { tasks: '7', name: 'ada', when: '2024-05-01', unknown: 1 });
    expect(r.errors).toEqual({});
    expect(r.inputs).toEqual({ tasks: 7, name: 'ada', mode: 'fast', when: new Date('2024-05-01') });
  });

  test("the schema's own checks give field messages, the form's checks theirs", () => {
    expect(parse(model, { name: 'admin', even: 3 }).errors).toEqual({ name: ['That name is taken.'], even: ['Must be even.'] });
    expect(parse(model, { name: 'x', tasks: 501 }).errors).toEqual({ tasks: ['Must be at most 500.'] });
    expect(parse(model, { tasks: 1 }).errors).toEqual({ name: ['This field is required.'] });
  });

  test('issues of the whole object are form-wide (_global_)', () => {
    const Range = z.object({ from: z.number(), to: z.number() }).refine((r) => r.from <= r.to, 'From must not be after to.');
    expect(parse(F.fromZod(Range), { from: 5, to: 1 }).errors).toEqual({ _global_: ['From must not be after to.'] });
  });
});

describe('InputsError', () => {
  test('collects messages by field and form-wide, and answers with the InputsErrorBody shape', () => {
    const error = new InputsError();
    expect(error.hasErrors()).toBe(false);
    error.add({ tasks: 'Please specify the number of concurrent tasks.' });
    error.add({ tasks: 'Maximum number of concurrent tasks is 500', _global_: 'Nothing was started.' });
    error.addGlobal('Try again.');
    expect(error.hasErrors()).toBe(true);
    expect(error.toJSON()).toEqual({
      errors: { tasks: ['Please specify the number of concurrent tasks.', 'Maximum number of concurrent tasks is 500'], _global_: ['Nothing was started.', 'Try again.'] },
    });
    expect(error.errors).toBe(error.toJSON().errors);
    expect(error.code).toBe('INPUTS_INVALID');
    expect(error.message).toMatch(/tasks: Please specify/);
  });

  test('can be made with its messages at once, a string being form-wide', () => {
    expect(new InputsError({ a: ['x', 'y'] }).errors).toEqual({ a: ['x', 'y'] });
    expect(new InputsError('Busy.').errors).toEqual({ _global_: ['Busy.'] });
  });

  test('is recognised by instanceof even when made by another copy of the package', () => {
    const foreign = Object.assign(new Error('x'), { [Symbol.for('nodus.serve.inputs-error')]: true });
    expect(foreign instanceof InputsError).toBe(true);
    expect(new Error('x') instanceof InputsError).toBe(false);
  });
});

describe('inputsJsonSchema', () => {
  test('describes each input with its JSON Schema type, bounds and default', () => {
    const schema = inputsJsonSchema(
      F.Model(
        F.InputText({ name: 't', label: 'T', value: 'x', pattern: '[a-z]+' }),
        F.InputNumber({ name: 'n', min: 1, max: 500, required: true }),
        F.Checkbox({ name: 'c' }),
        F.InputDate({ name: 'd' }),
        F.Select({ name: 's', multiple: true, options: [F.InputOption({ name: 'a' })] }),
        F.Action({ name: 'go', text: 'Go', value: 'go' }),
      ).elements,
    );
    expect(schema).toEqual({
      type: 'object',
      properties: {
        t: { title: 'T', default: 'x', type: 'string', pattern: '^(?:[a-z]+)$' },
        n: { type: 'number', minimum: 1, maximum: 500 },
        c: { type: 'boolean' },
        d: { type: 'string', format: 'date' },
        s: { type: 'array', items: { type: 'string', enum: ['a'] } },
        go: { type: 'string', enum: ['go'] },
      },
      required: ['n'],
      additionalProperties: true,
    });
  });
});
