/** @module The form elements of an entry point (kodosumi's `forms`): users write `import { forms as F } from 'nodus/serve'`. */
import { z } from 'zod';
import { ConfigError } from '../runtime';
import type { FormElement, SelectOption } from '../runtime/protocol/services';
import { zodInner } from './inputs';

// Type-only brand: carries the inputs type of a model made by fromZod to the handler of app.enter. Never set.
declare const inputsType: unique symbol;

/**
 * A form: the ordered list of elements that `GET` of an entry point returns and its `POST` is checked against.
 * `T` is the type of the inputs the handler receives: `Record<string, any>` for a model made with {@link Model},
 * the schema's output type for one made with {@link fromZod}.
 *
 * @example
 * const model: Model = F.Model(F.InputText({ name: 'q' }), F.Submit('Search'));
 * model.elements; // [{ type: 'text', name: 'q' }, { type: 'submit', text: 'Search' }]
 */
// `any` values, as kodosumi's `inputs: dict`: a form's inputs are untyped, and `inputs.tasks > 500` must compile.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export interface Model<T = Record<string, any>> {
  /** The elements, in order, as JSON. */
  readonly elements: FormElement[];
  /** The zod schema it was made from (fromZod): a POST is validated with it too. */
  readonly schema?: z.ZodObject;
  /** The elements: `JSON.stringify(model)` gives the FormElement[] of the wire contract. */
  toJSON(): FormElement[];
  readonly [inputsType]?: T;
}

const INPUT_TYPES = new Set(['text', 'password', 'textarea', 'number', 'date', 'time', 'datetime', 'checkbox', 'select', 'files']);
const ELEMENT_TYPES = new Set([...INPUT_TYPES, 'markdown', 'html', 'break', 'hr', 'errors', 'submit', 'cancel', 'action']);

class FormModel<T> implements Model<T> {
  declare readonly [inputsType]?: T;
  constructor(
    readonly elements: FormElement[],
    readonly schema?: z.ZodObject,
  ) {
    const inputs = new Set<string>();
    const actions = new Set<string>();
    for (const el of elements) {
      if (!el || typeof el !== 'object' || !ELEMENT_TYPES.has((el as { type?: string }).type as string)) {
        throw new ConfigError(`F.Model takes form elements made by the F.* functions (F.InputText(...), F.Submit(...)); got ${JSON.stringify(el)}.`);
      }
      if (!('name' in el)) continue;
      // Actions are alternatives under one name (the button pressed posts its value), so only inputs must be unique.
      const clash = el.type === 'action' ? inputs.has(el.name) : inputs.has(el.name) || actions.has(el.name);
      if (clash) throw new ConfigError(`Two elements of the form are named "${el.name}"; names must be unique within a model: rename one of them.`);
      (el.type === 'action' ? actions : inputs).add(el.name);
    }
  }
  toJSON(): FormElement[] {
    return this.elements;
  }
}

/**
 * A form made of the given elements, in order. Input names must be unique within it.
 *
 * @example
 * const myModel = F.Model(
 *   F.Markdown('# My Service'),
 *   F.InputText({ label: 'Number of Tasks', name: 'tasks', value: '25' }),
 *   F.Submit('Submit'), F.Cancel('Cancel'));
 */
export function Model(...elements: FormElement[]): Model {
  return new FormModel(elements);
}

/**
 * True for what Model() and fromZod() return.
 *
 * @example
 * isModel(F.Model(F.Submit('Go'))); // true
 * isModel([F.Submit('Go')]);        // false: elements, not a model
 */
export function isModel(value: unknown): value is Model<unknown> {
  return value instanceof FormModel;
}

/**
 * The form element(s) of the given type(s), as the F.* functions return them.
 *
 * @example
 * const tasks: F.ElementOf<'number'> = F.InputNumber({ name: 'tasks', max: 500 });
 * tasks.max; // 500
 */
export type ElementOf<T extends FormElement['type']> = Extract<FormElement, { type: T }>;

// ---------------------------------------------------------------- text elements

/**
 * Removes the common indentation of a text, as Python's `inspect.cleandoc` does for kodosumi's triple-quoted
 * strings: leading and trailing blank lines go, the first line loses its own indentation, the others the
 * smallest indentation among them. Without it, indented Markdown in a template literal renders as a code block.
 */
function dedent(text: string): string {
  const lines = text.split(/\r?\n/);
  while (lines.length && !lines[0].trim()) lines.shift();
  while (lines.length && !lines[lines.length - 1].trim()) lines.pop();
  if (!lines.length) return '';
  const rest = lines.slice(1).filter((l) => l.trim());
  const margin = rest.length ? Math.min(...rest.map((l) => /^[ \t]*/.exec(l)![0].length)) : 0;
  return [lines[0].trimStart(), ...lines.slice(1).map((l) => l.slice(Math.min(margin, /^[ \t]*/.exec(l)![0].length)))].join('\n');
}

function text(fn: string, value: unknown): string {
  if (typeof value !== 'string') throw new ConfigError(`F.${fn} takes a string, like F.${fn}('Submit'); got ${typeof value}.`);
  return value;
}

/**
 * Markdown text shown in the form; indentation common to its lines is removed.
 *
 * @example
 * F.Markdown(`
 *   # My Service
 *   Specify the number of tasks to run.
 * `);
 */
export function Markdown(markdown: string): ElementOf<'markdown'> {
  return { type: 'markdown', text: dedent(text('Markdown', markdown)) };
}

/**
 * HTML shown in the form (rendered sanitized).
 *
 * @example
 * F.HTML('<p>Results arrive <b>as they finish</b>.</p>');
 */
export function HTML(html: string): ElementOf<'html'> {
  return { type: 'html', text: dedent(text('HTML', html)) };
}

/**
 * A line break between elements.
 *
 * @example
 * F.Model(F.Markdown('# Title'), F.Break(), F.InputText({ name: 'q' }));
 */
export function Break(): ElementOf<'break'> {
  return { type: 'break' };
}

/**
 * A horizontal rule.
 *
 * @example
 * F.Model(F.Markdown('# Title'), F.HR(), F.InputText({ name: 'q' }));
 */
export function HR(): ElementOf<'hr'> {
  return { type: 'hr' };
}

/**
 * Where the form's errors that belong to no field (`_global_`) are shown; optionally with a heading.
 *
 * @example
 * F.Model(F.Errors(), F.InputText({ name: 'q' }), F.Submit('Go'));
 */
export function Errors(heading?: string): ElementOf<'errors'> {
  return heading === undefined ? { type: 'errors' } : { type: 'errors', text: text('Errors', heading) };
}

/**
 * The button that posts the form.
 *
 * @example
 * F.Submit('Submit');
 */
export function Submit(label: string): ElementOf<'submit'> {
  return { type: 'submit', text: text('Submit', label) };
}

/**
 * The button that leaves the form without posting.
 *
 * @example
 * F.Cancel('Cancel');
 */
export function Cancel(label: string): ElementOf<'cancel'> {
  return { type: 'cancel', text: text('Cancel', label) };
}

/**
 * A button that posts the form with `name` = `value`; several actions may share a name.
 *
 * @example
 * F.Model(F.Action({ name: 'mode', value: 'fast', text: 'Fast' }), F.Action({ name: 'mode', value: 'slow', text: 'Slow' }));
 */
export function Action(options: { name: string; text: string; value: string }): ElementOf<'action'> {
  const o = checkOptions('Action', options, ['name', 'text', 'value']);
  if (typeof o.text !== 'string' || typeof o.value !== 'string') {
    throw new ConfigError(`F.Action needs a text and a string value, like F.Action({ name: 'mode', text: 'Fast', value: 'fast' }).`);
  }
  return { type: 'action', name: o.name, text: o.text, value: o.value };
}

// ---------------------------------------------------------------- inputs

/** Options every input has. */
export interface InputOptions {
  /** The key its value is posted under; unique within the model. */
  name: string;
  /** Text shown with the input. */
  label?: string;
  /** A value must be given (a checkbox must be checked). @default false */
  required?: boolean;
  disabled?: boolean;
  readonly?: boolean;
}

/** Options of InputText, InputPassword and InputArea. */
export interface TextOptions extends InputOptions {
  /** The default value. */
  value?: string;
  placeholder?: string;
  maxLength?: number;
  minLength?: number;
  /** A regular expression the whole value must match (as HTML's `pattern`). */
  pattern?: string;
}

/** Options of InputArea. */
export interface AreaOptions extends TextOptions {
  /** Visible lines. */
  rows?: number;
}

/** Options of InputNumber. */
export interface NumberOptions extends InputOptions {
  value?: number;
  placeholder?: string;
  min?: number;
  max?: number;
  /** Values must be `min` (or 0) plus a multiple of it. */
  step?: number;
}

/** Options of InputDate (`YYYY-MM-DD`), InputTime (`HH:MM[:SS]`) and InputDateTime (`YYYY-MM-DDTHH:MM[:SS]`). */
export interface DateOptions extends InputOptions {
  value?: string;
  /** Earliest value, written like the value. */
  min?: string;
  /** Latest value, written like the value. */
  max?: string;
}

/** Options of Checkbox. */
export interface CheckboxOptions extends InputOptions {
  /** Checked by default. @default false */
  value?: boolean;
  /** Text beside the box. */
  option?: string;
}

/** Options of Select. */
export interface SelectOptions extends InputOptions {
  /** The choices, made with InputOption. */
  options: SelectOption[];
  /** Several may be chosen: the input is then an array of option names. @default false */
  multiple?: boolean;
  /** The option name(s) chosen by default. */
  value?: string | string[];
}

/** Options of InputFiles. */
export interface FilesOptions extends InputOptions {
  multiple?: boolean;
  directory?: boolean;
  /** File types, as HTML's `accept`: `.csv,image/*`. */
  accept?: string;
}

const BASE = ['name', 'label', 'required', 'disabled', 'readonly'] as const;
const TEXT = [...BASE, 'value', 'placeholder', 'maxLength', 'minLength', 'pattern'] as const;

/** Rejects unknown keys (listing the valid ones) and a missing name; drops keys set to undefined. */
function checkOptions<O extends object>(fn: string, options: O, allowed: readonly string[]): O & { name: string } {
  if (!options || typeof options !== 'object' || Array.isArray(options)) {
    throw new ConfigError(`F.${fn} takes an options object, like F.${fn}({ name: 'field', label: 'Field' }).`);
  }
  const unknown = Object.keys(options).filter((k) => !allowed.includes(k));
  if (unknown.length) throw new ConfigError(`F.${fn} has no option ${unknown.map((k) => `"${k}"`).join(', ')}; its options are ${allowed.join(', ')}.`);
  const o = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as O & { name: string };
  if (typeof o.name !== 'string' || !o.name || o.name === '_global_') {
    throw new ConfigError(`F.${fn} needs a name, the key its value is posted under, like F.${fn}({ name: 'tasks' }) ('_global_' is taken by form-wide errors).`);
  }
  for (const k of ['min', 'max', 'step', 'maxLength', 'minLength', 'rows'] as const) {
    const v = (o as Record<string, unknown>)[k];
    if (v !== undefined && fn !== 'InputDate' && fn !== 'InputTime' && fn !== 'InputDateTime' && (typeof v !== 'number' || !Number.isFinite(v))) {
      throw new ConfigError(`F.${fn} "${o.name}": ${k} must be a finite number; got ${JSON.stringify(v)}.`);
    }
  }
  const { min, max, minLength, maxLength, step } = o as Record<string, number | undefined>;
  if (min !== undefined && max !== undefined && min > max) throw new ConfigError(`F.${fn} "${o.name}": min (${min}) is above max (${max}); swap them.`);
  if (minLength !== undefined && maxLength !== undefined && minLength > maxLength) {
    throw new ConfigError(`F.${fn} "${o.name}": minLength (${minLength}) is above maxLength (${maxLength}); swap them.`);
  }
  if (step !== undefined && !(step > 0)) throw new ConfigError(`F.${fn} "${o.name}": step must be above 0; got ${step}.`);
  const pattern = (o as { pattern?: unknown }).pattern;
  if (pattern !== undefined) {
    try {
      new RegExp(String(pattern), 'u');
    } catch (e) {
      throw new ConfigError(`F.${fn} "${o.name}": pattern is not a valid regular expression (${(e as Error).message}); fix it.`);
    }
  }
  return o;
}

/**
 * A one-line text input.
 *
 * @example
 * F.InputText({ label: 'Number of Tasks', name: 'tasks', value: '25' });
 */
export function InputText(options: TextOptions): ElementOf<'text' | 'password' | 'textarea'> {
  return { type: 'text', ...checkOptions('InputText', options, TEXT) };
}

/**
 * A text input whose value is hidden while typed.
 *
 * @example
 * F.InputPassword({ label: 'API key', name: 'key', required: true });
 */
export function InputPassword(options: TextOptions): ElementOf<'text' | 'password' | 'textarea'> {
  return { type: 'password', ...checkOptions('InputPassword', options, TEXT) };
}

/**
 * A multi-line text input.
 *
 * @example
 * F.InputArea({ label: 'Prompt', name: 'prompt', rows: 8, maxLength: 4000 });
 */
export function InputArea(options: AreaOptions): ElementOf<'text' | 'password' | 'textarea'> {
  return { type: 'textarea', ...checkOptions('InputArea', options, [...TEXT, 'rows']) };
}

/**
 * A number input: the handler receives a number.
 *
 * @example
 * F.InputNumber({ label: 'Tasks', name: 'tasks', value: 25, min: 1, max: 500, step: 1 });
 */
export function InputNumber(options: NumberOptions): ElementOf<'number'> {
  return { type: 'number', ...checkOptions('InputNumber', options, [...BASE, 'value', 'placeholder', 'min', 'max', 'step']) };
}

/**
 * A date input: the handler receives `YYYY-MM-DD`.
 *
 * @example
 * F.InputDate({ label: 'From', name: 'from', min: '2024-01-01' });
 */
export function InputDate(options: DateOptions): ElementOf<'date' | 'time' | 'datetime'> {
  return { type: 'date', ...checkOptions('InputDate', options, [...BASE, 'value', 'min', 'max']) };
}

/**
 * A time input: the handler receives `HH:MM` or `HH:MM:SS`.
 *
 * @example
 * F.InputTime({ label: 'At', name: 'at', value: '09:00' });
 */
export function InputTime(options: DateOptions): ElementOf<'date' | 'time' | 'datetime'> {
  return { type: 'time', ...checkOptions('InputTime', options, [...BASE, 'value', 'min', 'max']) };
}

/**
 * A local date and time input: the handler receives `YYYY-MM-DDTHH:MM[:SS]`.
 *
 * @example
 * F.InputDateTime({ label: 'Start', name: 'start' });
 */
export function InputDateTime(options: DateOptions): ElementOf<'date' | 'time' | 'datetime'> {
  return { type: 'datetime', ...checkOptions('InputDateTime', options, [...BASE, 'value', 'min', 'max']) };
}

/**
 * A checkbox: the handler receives true or false.
 *
 * @example
 * F.Checkbox({ label: 'Options', name: 'verbose', option: 'Verbose output', value: false });
 */
export function Checkbox(options: CheckboxOptions): ElementOf<'checkbox'> {
  return { type: 'checkbox', ...checkOptions('Checkbox', options, [...BASE, 'value', 'option']) };
}

/**
 * One choice of a Select: `name` is what is posted, `label` what is shown, `value: true` chooses it by default.
 *
 * @example
 * F.InputOption({ name: 'gpt', label: 'GPT', value: true });
 */
export function InputOption(options: { name: string; label?: string; value?: boolean }): SelectOption {
  const o = checkOptions('InputOption', options, ['name', 'label', 'value']);
  return { name: o.name, label: o.label ?? o.name, ...(o.value === undefined ? {} : { value: o.value }) };
}

/**
 * A choice among options: the handler receives the chosen option's name (an array of names when `multiple`).
 *
 * @example
 * F.Select({ label: 'Model', name: 'model', options: [F.InputOption({ name: 'small' }), F.InputOption({ name: 'large' })] });
 */
export function Select(options: SelectOptions): ElementOf<'select'> {
  const o = checkOptions('Select', options, [...BASE, 'options', 'multiple', 'value']);
  if (!Array.isArray(o.options) || !o.options.length) {
    throw new ConfigError(`F.Select "${o.name}" needs options: options: [F.InputOption({ name: 'a' }), F.InputOption({ name: 'b' })].`);
  }
  const names = o.options.map((opt) => opt?.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined || names.some((n) => typeof n !== 'string')) {
    throw new ConfigError(`F.Select "${o.name}": every option needs a name, and names must differ (${JSON.stringify(twice)} is there twice); make them with F.InputOption.`);
  }
  return { type: 'select', ...o };
}

/**
 * A file picker. Uploads (multipart) are not accepted by ServeAPI yet: its value is passed through as posted.
 *
 * @example
 * F.InputFiles({ label: 'Documents', name: 'docs', multiple: true, accept: '.pdf' });
 */
export function InputFiles(options: FilesOptions): ElementOf<'files'> {
  return { type: 'files', ...checkOptions('InputFiles', options, [...BASE, 'multiple', 'directory', 'accept']) };
}

// ---------------------------------------------------------------- from a zod schema

/** Options of fromZod. */
export interface FromZodOptions {
  /** Elements before the inputs (a Markdown introduction...). */
  before?: FormElement[];
  /** Label of the submit button. @default 'Submit' */
  submit?: string;
  /** Label of the cancel button. @default 'Cancel' */
  cancel?: string;
}

type JsonSchema = {
  type?: string;
  title?: string;
  description?: string;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  multipleOf?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  items?: JsonSchema;
};

/** zod's integer bounds are ±MAX_SAFE_INTEGER: not worth showing in a form. */
const bound = (n: number | undefined) => (n !== undefined && Math.abs(n) < Number.MAX_SAFE_INTEGER ? n : undefined);

/**
 * A model from a zod object schema: a string becomes InputText (InputDate, InputTime, InputDateTime for
 * `z.iso.date()`, `z.iso.time()`, `z.iso.datetime()`), a number InputNumber (min/max/step from its checks),
 * a boolean a Checkbox, an enum a Select (an array of an enum a multiple Select), `z.date()` InputDate (the
 * handler gets a Date); `.describe()` gives the label, `.default()` the value, `.optional()` or a default
 * makes it not required. Submit and Cancel buttons follow. A POST is also validated with the schema, and
 * the handler's `inputs` are typed `z.infer<typeof schema>`.
 *
 * @example
 * const Inputs = z.object({ tasks: z.number().int().min(1).max(500).default(25).describe('Number of tasks') });
 * app.enter({ path: '/', model: F.fromZod(Inputs), summary: 'My Service' }, async (request, inputs) => {
 *   inputs.tasks; // number
 * });
 */
export function fromZod<S extends z.ZodObject>(schema: S, options: FromZodOptions = {}): Model<z.output<S>> {
  if (!(schema instanceof z.ZodObject)) throw new ConfigError('F.fromZod takes a zod object schema, like F.fromZod(z.object({ tasks: z.number() })).');
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as { properties?: Record<string, JsonSchema>; required?: string[] };
  const required = new Set(json.required ?? []);
  const elements: FormElement[] = [...(options.before ?? [])];
  for (const [name, field] of Object.entries(schema.shape)) {
    const js = json.properties?.[name] ?? {};
    const base = { name, label: js.description ?? js.title ?? name, ...(required.has(name) ? { required: true } : {}) };
    const inner = zodInner(field as z.ZodType);
    const kind = inner._zod.def.type;
    const format = (inner as { format?: string | null }).format;
    const dflt = js.default;
    if (kind === 'string' && (format === 'date' || format === 'time' || format === 'datetime')) {
      const make = { date: InputDate, time: InputTime, datetime: InputDateTime }[format];
      elements.push(make({ ...base, value: typeof dflt === 'string' ? dflt : undefined }));
    } else if (kind === 'string') {
      // A format's pattern (email, uuid...) is zod's to check; only the author's own regex goes to the form.
      const pattern = !format || format === 'regex' ? js.pattern : undefined;
      elements.push(InputText({ ...base, value: typeof dflt === 'string' ? dflt : undefined, minLength: js.minLength, maxLength: js.maxLength, pattern }));
    } else if (kind === 'number') {
      elements.push(
        InputNumber({
          ...base,
          value: typeof dflt === 'number' ? dflt : undefined,
          min: bound(js.minimum),
          max: bound(js.maximum),
          step: js.multipleOf ?? (js.type === 'integer' ? 1 : undefined),
        }),
      );
    } else if (kind === 'boolean') {
      elements.push(Checkbox({ ...base, required: undefined, value: typeof dflt === 'boolean' ? dflt : undefined }));
    } else if (kind === 'enum') {
      const choices = (inner as z.ZodEnum).options.map((o) => InputOption({ name: String(o) }));
      elements.push(Select({ ...base, options: choices, value: typeof dflt === 'string' ? dflt : undefined }));
    } else if (kind === 'array' && zodInner((inner as z.ZodArray<z.ZodType>).element)._zod.def.type === 'enum') {
      const choices = (zodInner((inner as z.ZodArray<z.ZodType>).element) as z.ZodEnum).options.map((o) => InputOption({ name: String(o) }));
      elements.push(Select({ ...base, options: choices, multiple: true, value: Array.isArray(dflt) ? dflt.map(String) : undefined }));
    } else if (kind === 'date') {
      elements.push(InputDate({ ...base, value: typeof dflt === 'string' ? dflt.slice(0, 10) : undefined }));
    } else {
      throw new ConfigError(
        `F.fromZod cannot make a form input for "${name}" (a zod ${kind}); use strings, numbers, booleans, enums, arrays of an enum or dates, or build the form with F.Model(...).`,
      );
    }
  }
  elements.push(Submit(options.submit ?? 'Submit'), Cancel(options.cancel ?? 'Cancel'));
  return new FormModel<z.output<S>>(elements, schema);
}
