/** @module Tasks (Cornserve's): typed by zod schemas, composed by calling each other; unit tasks run in model hosts. */
import type { z } from 'zod';
import { ConfigError } from '../runtime';

const TASK_BRAND = Symbol.for('nodus.serving.task');

/** True for a task made by any copy of this package (instanceof only knows its own copy's class). */
export function isTask(v: unknown): v is Task {
  return !!v && typeof v === 'object' && (v as Record<symbol, unknown>)[TASK_BRAND] === true;
}

/**
 * A task: `invoke(input)` turns a validated input into an output. A composite task creates the tasks it calls in
 * an optional `postInit()` method (run once, before the first call) and calls them from `invoke`; unit tasks (EncoderTask, LLMTask)
 * run in model hosts on the cluster. Call a task with `call(input)`: the input and the output are checked
 * against their schemas.
 *
 * @example
 * class Echo extends Task<typeof In, typeof Out> {
 *   constructor() { super(In, Out); }
 *   async invoke(input: z.infer<typeof In>) { return { text: input.text }; }
 * }
 * await new Echo().call({ text: 'hi' });
 */
export abstract class Task<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  private initialized: Promise<void> | undefined;
  /** A brand that holds across copies of this package (an app may load its own). */
  readonly [TASK_BRAND] = true;

  constructor(
    readonly inputSchema: I,
    readonly outputSchema: O,
  ) {}

  /** The task's work, on a validated input. */
  abstract invoke(input: z.output<I>): Promise<z.input<O>> | z.input<O>;

  /**
   * Runs the subclass's `postInit()` once, if it has one: the method that creates the tasks this one calls
   * (Cornserve's post_init). It is not declared here, so a subclass defines it without `override`, as in the seed.
   */
  ensureInit(): Promise<void> {
    this.initialized ??= Promise.resolve().then(() => (this as { postInit?: () => void | Promise<void> }).postInit?.());
    return this.initialized;
  }

  /** Validates the input, invokes, validates the output. Many calls may run at once. */
  async call(input: z.input<I>): Promise<z.output<O>> {
    const parsed = this.inputSchema.safeParse(input);
    if (!parsed.success) throw new ConfigError(`${this.constructor.name}: the input does not match its schema: ${describeIssues(parsed.error)}`);
    await this.ensureInit();
    const out = this.outputSchema.safeParse(await this.invoke(parsed.data as z.output<I>));
    if (!out.success) throw new ConfigError(`${this.constructor.name}: invoke() returned an output that does not match its schema: ${describeIssues(out.error)}`);
    return out.data as z.output<O>;
  }

  /** The tasks this one holds (after postInit): its properties that are tasks, and those in arrays or plain objects. */
  subtasks(): Task[] {
    const found: Task[] = [];
    const visit = (v: unknown, depth: number) => {
      if (isTask(v)) found.push(v);
      else if (depth < 2 && Array.isArray(v)) v.forEach((x) => visit(x, depth + 1));
      else if (depth < 2 && v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) Object.values(v).forEach((x) => visit(x, depth + 1));
    };
    for (const v of Object.values(this)) visit(v, 0);
    return found;
  }
}

function describeIssues(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length ? i.path.join('.') : '(input)'}: ${i.message}`).join('; ');
}

/** Every unit task under `roots` (composite tasks initialized on the way), each once. */
export async function collectTasks(roots: Task[]): Promise<Task[]> {
  const seen = new Set<Task>();
  const walk = async (t: Task) => {
    if (seen.has(t)) return;
    seen.add(t);
    await t.ensureInit();
    for (const s of t.subtasks()) await walk(s);
  };
  for (const r of roots) await walk(r);
  return [...seen];
}
