/** @module InputsError: what an entry point's handler throws to send the form back with messages (kodosumi's). */
import { NodusError } from '../runtime';
import type { InputsErrorBody } from '../runtime/protocol/services';

const BRAND = Symbol.for('nodus.serve.inputs-error');
/** The key of messages that belong to the whole form rather than one field. */
const GLOBAL = '_global_';

/**
 * Thrown by an entry point's handler when the inputs do not pass its own checks: the service answers 200
 * `{ errors: { field: [messages] } }` and the form is shown again with the messages. `_global_` holds
 * messages about the form as a whole.
 *
 * @example
 * const error = new InputsError();
 * if (!inputs.tasks) error.add({ tasks: 'Please specify the number of concurrent tasks.' });
 * if (error.hasErrors()) throw error;
 */
export class InputsError extends NodusError {
  override readonly code = 'INPUTS_INVALID';
  /** Messages by field name; `_global_` for the form. */
  readonly errors: Record<string, string[]> = {};

  /** Optionally with first messages: a string is a global one. */
  constructor(errors?: string | Record<string, string | string[]>) {
    super('The inputs are not valid.');
    (this as unknown as Record<symbol, boolean>)[BRAND] = true;
    if (typeof errors === 'string') this.addGlobal(errors);
    else if (errors) this.add(errors);
  }

  /** instanceof holds across duplicate copies of the package (a service bundling its own nodus). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  /**
   * Adds messages by field: `add({ tasks: 'Too many.' })`, `add({ _global_: 'Try again later.' })`.
   *
   * @example
   * error.add({ tasks: 'Maximum number of concurrent tasks is 500', _global_: 'Nothing was started.' });
   */
  add(errors: Record<string, string | string[] | undefined>): this {
    for (const [field, msgs] of Object.entries(errors)) {
      if (msgs === undefined) continue;
      (this.errors[field] ??= []).push(...(Array.isArray(msgs) ? msgs : [msgs]).map(String));
    }
    this.message = `The inputs are not valid: ${Object.entries(this.errors)
      .map(([f, m]) => `${f}: ${m.join(' ')}`)
      .join('; ')}`;
    return this;
  }

  /**
   * Adds a message about the form as a whole (`_global_`).
   *
   * @example
   * new InputsError().addGlobal('The service is busy; try again in a minute.');
   */
  addGlobal(message: string): this {
    return this.add({ [GLOBAL]: message });
  }

  /**
   * True once a message was added.
   *
   * @example
   * if (error.hasErrors()) throw error;
   */
  hasErrors(): boolean {
    return Object.keys(this.errors).length > 0;
  }

  /**
   * The body the service answers with.
   *
   * @example
   * new InputsError({ tasks: 'Too many.' }).toJSON(); // { errors: { tasks: ['Too many.'] } }
   */
  toJSON(): InputsErrorBody {
    return { errors: this.errors };
  }
}
