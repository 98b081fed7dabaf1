/** @module form's entrypoint: shows the inputs it was given, converted and checked by the form. */
import type { Tracer } from 'nodus/serve';

export async function execute(inputs: Record<string, unknown>, tracer: Tracer) {
  const rows = Object.entries(inputs).map(([k, v]) => `| ${k} | \`${JSON.stringify(v)}\` | ${Array.isArray(v) ? 'array' : typeof v} |`);
  await tracer.markdown(['# What the form sent', '', '| field | value | type |', '|---|---|---|', ...rows].join('\n'));
  return inputs;
}
