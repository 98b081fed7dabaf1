/** @module Converting and validating the inputs posted to an entry point, from its form elements (and its zod schema, if any). */
import { z } from 'zod';
import type { FormElement } from '../runtime/protocol/services';

/** What parseInputs returns: the converted inputs, and per-field messages (`_global_` for the form) when some did not pass. */
export interface ParsedInputs {
  inputs: Record<string, unknown>;
  errors: Record<string, string[]>;
}

type Input = Extract<FormElement, { name: string }>;
type Result = { value: unknown } | { error: string };

const REQUIRED = 'This field is required.';
const isEmpty = (v: unknown) => v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0);
const isoDate = z.iso.date();
const isoTime = z.iso.time();
const isoDateTime = z.iso.datetime({ local: true });
const FORMATS = {
  date: { schema: isoDate, message: 'Must be a date written as YYYY-MM-DD, like 2024-12-31.' },
  time: { schema: isoTime, message: 'Must be a time written as HH:MM or HH:MM:SS, like 13:45.' },
  datetime: { schema: isoDateTime, message: 'Must be a date and time written as YYYY-MM-DDTHH:MM, like 2024-12-31T13:45.' },
};

function text(el: Extract<Input, { type: 'text' | 'password' | 'textarea' }>, v: unknown): Result {
  if (typeof v === 'object') return { error: 'Must be a single text value.' };
  // kodosumi passes JSON values through: `{"tasks": 100}` to a text input arrives as the number 100.
  const s = String(v);
  if (el.minLength !== undefined && s.length < el.minLength) return { error: `Must be at least ${el.minLength} characters long.` };
  if (el.maxLength !== undefined && s.length > el.maxLength) return { error: `Must be at most ${el.maxLength} characters long.` };
  // As HTML's pattern attribute: the whole value must match.
  if (el.pattern !== undefined && !new RegExp(`^(?:${el.pattern})$`, 'u').test(s)) return { error: 'Does not have the expected format.' };
  return { value: v };
}

function number(el: Extract<Input, { type: 'number' }>, v: unknown): Result {
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v.trim()) : NaN;
  if (!Number.isFinite(n)) return { error: 'Must be a number.' };
  if (el.min !== undefined && n < el.min) return { error: `Must be at least ${el.min}.` };
  if (el.max !== undefined && n > el.max) return { error: `Must be at most ${el.max}.` };
  if (el.step !== undefined) {
    // As HTML: steps count from min (or 0); the tolerance absorbs float error (0.1 + 0.2).
    const base = el.min ?? 0;
    const q = (n - base) / el.step;
    if (Math.abs(q - Math.round(q)) > 1e-9) return { error: base ? `Must be ${base} plus a multiple of ${el.step}.` : `Must be a multiple of ${el.step}.` };
  }
  return { value: n };
}

function moment(el: Extract<Input, { type: 'date' | 'time' | 'datetime' }>, v: unknown): Result {
  const { schema, message } = FORMATS[el.type];
  if (typeof v !== 'string' || !schema.safeParse(v).success) return { error: message };
  // Same-shaped ISO strings order as text.
  if (el.min !== undefined && v < el.min) return { error: `Must be ${el.min} or later.` };
  if (el.max !== undefined && v > el.max) return { error: `Must be ${el.max} or earlier.` };
  return { value: v };
}

const TRUE = new Set<unknown>([true, 'on', 'true', '1', 1, 'yes']);
const FALSE = new Set<unknown>([false, 'off', 'false', '0', 0, 'no', '', undefined, null]);

function checkbox(el: Extract<Input, { type: 'checkbox' }>, v: unknown): Result {
  // An HTML form posts nothing for an unchecked box, so missing means false.
  const on = TRUE.has(v) ? true : FALSE.has(v) ? false : undefined;
  if (on === undefined) return { error: 'Must be checked or not: true or false.' };
  if (el.required && !on) return { error: 'Must be checked.' };
  return { value: on };
}

function select(el: Extract<Input, { type: 'select' }>, v: unknown): Result {
  const names = el.options.map((o) => o.name);
  const list = names.map((n) => `"${n}"`).join(', ');
  const one = (x: unknown) => (typeof x === 'string' || typeof x === 'number' ? String(x) : undefined);
  if (el.multiple) {
    const chosen = (Array.isArray(v) ? v : [v]).map(one);
    return chosen.every((c) => c !== undefined && names.includes(c)) ? { value: chosen } : { error: `Each choice must be one of ${list}.` };
  }
  if (Array.isArray(v)) return { error: 'Choose only one option.' };
  const c = one(v);
  return c !== undefined && names.includes(c) ? { value: c } : { error: `Must be one of ${list}.` };
}

function convert(el: Input, v: unknown): Result {
  if (el.type === 'checkbox') return checkbox(el, v);
  if (el.type === 'action') return { value: v };
  if (isEmpty(v)) {
    if (el.required) return { error: REQUIRED };
    // An empty text stays as posted; an empty number, date or choice is left out rather than invented.
    return { value: el.type === 'text' || el.type === 'password' || el.type === 'textarea' ? v : el.type === 'select' && el.multiple ? [] : undefined };
  }
  switch (el.type) {
    case 'text':
    case 'password':
    case 'textarea':
      return text(el, v);
    case 'number':
      return number(el, v);
    case 'date':
    case 'time':
    case 'datetime':
      return moment(el, v);
    case 'select':
      return select(el, v);
    default:
      // Files: passed through as posted (uploads are not handled yet).
      return { value: v };
  }
}

/** The innermost type of a zod field: through optional, nullable, default, readonly, catch and pipes (their input side). */
export function zodInner(field: z.ZodType): z.ZodType {
  let t = field as z.ZodType & { _zod: { def: { type: string; innerType?: z.ZodType; in?: z.ZodType } } };
  for (;;) {
    const def = t._zod.def;
    const next = def.innerType ?? (def.type === 'pipe' ? def.in : undefined);
    if (!next) return t;
    t = next as typeof t;
  }
}

/** zod's default messages are terse ("Too big: expected number to be <=500"); these read as sentences. An author's own message wins. */
function friendly(issue: z.core.$ZodRawIssue): string | undefined {
  const i = issue as unknown as Record<string, unknown>;
  const size = i.origin === 'string' ? ' characters long' : i.origin === 'array' ? ' items' : '';
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined ? REQUIRED : `Must be ${i.expected === 'int' ? 'a whole number' : `a ${String(i.expected)}`}.`;
    case 'too_big':
      return `Must be ${i.inclusive === false ? 'less than' : 'at most'} ${String(i.maximum)}${size}.`;
    case 'too_small':
      return `Must be ${i.inclusive === false ? 'more than' : 'at least'} ${String(i.minimum)}${size}.`;
    case 'invalid_value':
      return `Must be one of ${(i.values as unknown[]).map((x) => JSON.stringify(x)).join(', ')}.`;
    case 'invalid_format':
      return i.format === 'regex' ? 'Does not have the expected format.' : `Must be a valid ${String(i.format)}.`;
    case 'not_multiple_of':
      return `Must be a multiple of ${String(i.divisor)}.`;
    default:
      return undefined;
  }
}

/**
 * Per-field messages of a zod error (`_global_` for issues of the whole object), for an InputsErrorBody.
 *
 * @example
 * const r = schema.safeParse(inputs);
 * if (!r.success) zodErrors(r.error); // { tasks: ['Must be at most 500.'] }
 */
export function zodErrors(error: z.ZodError): Record<string, string[]> {
  const errors: Record<string, string[]> = {};
  for (const issue of error.issues) (errors[issue.path.length ? String(issue.path[0]) : '_global_'] ??= []).push(issue.message);
  return errors;
}

/**
 * Converts posted values by the elements that define them and checks them: a number input gives a number
 * (min, max, step checked), a checkbox a boolean (missing is false), a select one of its option names (an
 * array when multiple); required, pattern (whole value), min/max length, date (YYYY-MM-DD), time (HH:MM[:SS])
 * and local date-time formats are checked. Fields no element defines are kept as posted. With a zod schema
 * the result is also parsed by it (its output replaces the inputs; a `z.date()` field receives a Date).
 *
 * @example
 * parseInputs([{ type: 'number', name: 'tasks', max: 500 }], { tasks: '900', extra: 'x' });
 * // { inputs: { extra: 'x' }, errors: { tasks: ['Must be at most 500.'] } }
 */
export function parseInputs(elements: readonly FormElement[], body: Record<string, unknown>, schema?: z.ZodObject): ParsedInputs {
  const inputs: Record<string, unknown> = {};
  const errors: Record<string, string[]> = {};
  const known = new Set<string>();
  for (const el of elements) {
    if (!('name' in el) || known.has(el.name)) continue;
    known.add(el.name);
    const r = convert(el, Object.hasOwn(body, el.name) ? body[el.name] : undefined);
    if ('error' in r) errors[el.name] = [r.error];
    else if (r.value !== undefined) inputs[el.name] = r.value;
  }
  for (const [k, v] of Object.entries(body)) {
    // A JSON key "__proto__" is an own property there, but assigning it here would set the prototype.
    if (!known.has(k) && k !== '__proto__') inputs[k] = v;
  }
  if (!schema) return { inputs, errors };

  const candidate = { ...inputs };
  for (const [k, field] of Object.entries(schema.shape)) {
    // A form posts dates as text; a z.date() field wants a Date.
    if (typeof candidate[k] === 'string' && zodInner(field as z.ZodType)._zod.def.type === 'date') candidate[k] = new Date(candidate[k] as string);
  }
  const parsed = schema.safeParse(candidate, { error: friendly });
  if (!parsed.success) {
    // A field the elements already rejected keeps that one message.
    for (const [k, msgs] of Object.entries(zodErrors(parsed.error))) if (!errors[k] || k === '_global_') (errors[k] ??= []).push(...msgs);
  }
  return parsed.success && !Object.keys(errors).length ? { inputs: parsed.data as Record<string, unknown>, errors } : { inputs, errors };
}

/**
 * The JSON Schema of the inputs the elements accept (for openapi.json's requestBody).
 *
 * @example
 * inputsJsonSchema([{ type: 'number', name: 'tasks', max: 500 }]);
 * // { type: 'object', properties: { tasks: { type: 'number', maximum: 500 } }, additionalProperties: true }
 */
export function inputsJsonSchema(elements: readonly FormElement[]): Record<string, unknown> {
  const properties: Record<string, Record<string, unknown>> = {};
  const required: string[] = [];
  for (const el of elements) {
    if (!('name' in el)) continue;
    if (el.type === 'action') {
      const p = (properties[el.name] ??= { type: 'string', enum: [] });
      (p.enum as string[]).push(el.value);
      continue;
    }
    const p: Record<string, unknown> = {};
    if (el.label) p.title = el.label;
    if ('value' in el && el.value !== undefined) p.default = el.value;
    switch (el.type) {
      case 'text':
      case 'password':
      case 'textarea':
        Object.assign(p, { type: 'string', minLength: el.minLength, maxLength: el.maxLength, pattern: el.pattern && `^(?:${el.pattern})$` });
        break;
      case 'number':
        Object.assign(p, { type: 'number', minimum: el.min, maximum: el.max });
        break;
      case 'date':
        Object.assign(p, { type: 'string', format: 'date' });
        break;
      case 'time':
      case 'datetime':
        Object.assign(p, { type: 'string', pattern: isoSource(el.type) });
        break;
      case 'checkbox':
        p.type = 'boolean';
        break;
      case 'select': {
        const one = { type: 'string', enum: el.options.map((o) => o.name) };
        Object.assign(p, el.multiple ? { type: 'array', items: one } : one);
        break;
      }
      default:
        break;
    }
    for (const k of Object.keys(p)) if (p[k] === undefined) delete p[k];
    properties[el.name] = p;
    if (el.required) required.push(el.name);
  }
  return { type: 'object', properties, ...(required.length ? { required } : {}), additionalProperties: true };
}

function isoSource(type: 'time' | 'datetime'): string | undefined {
  return (z.toJSONSchema(type === 'time' ? isoTime : isoDateTime) as { pattern?: string }).pattern;
}
