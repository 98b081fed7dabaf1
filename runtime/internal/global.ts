/** @module The process-wide runtime context, reachable from any copy of the package through a Symbol.for key. */
import { NotInitializedError } from '../errors';

/**
 * What the public API needs from the running context. The context lives on
 * globalThis so that a worker process, which runs our compiled code, and the
 * user's module it imports, which may resolve its own copy of nodus, share it.
 */
export interface RuntimeContext {
  get(refs: unknown, timeoutMs: number | undefined): Promise<unknown>;
  refFromWire(id: string): object;
  submit(fn: unknown, args: unknown[], opts: unknown, generator: boolean): object;
}

const CONTEXT = Symbol.for('nodus.context');
type Holder = { [CONTEXT]?: RuntimeContext };

export function currentContext(): RuntimeContext | undefined {
  return (globalThis as Holder)[CONTEXT];
}

export function requireContext(what: string): RuntimeContext {
  const ctx = currentContext();
  if (!ctx) throw new NotInitializedError(`${what} needs a running cluster: call \`await init()\` first (it starts a local cluster, or joins one with init({ address })).`);
  return ctx;
}

export function setContext(ctx: RuntimeContext | undefined): void {
  (globalThis as Holder)[CONTEXT] = ctx;
}
