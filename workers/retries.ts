/** @module Retry on application errors (retryExceptions): which errors a task or an actor method is run again for. */

/**
 * True when `err` is one `retryExceptions` names: any error for `true`, else one whose name, or the name of
 * a class it extends, is in the list (so `[Error]` retries every Error, as `except Exception` would in Ray).
 */
export function shouldRetry(err: unknown, retryExceptions: true | string[] | undefined): boolean {
  if (!retryExceptions) return false;
  if (retryExceptions === true) return true;
  const names = new Set<string>();
  if (err instanceof Error) names.add(err.name);
  for (let p = err !== null && typeof err === 'object' ? Object.getPrototypeOf(err) : null; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    const n = (p as { constructor?: { name?: string } }).constructor?.name;
    if (n) names.add(n);
  }
  return retryExceptions.some((n) => names.has(n));
}

/** The line a retried task or method prints (it reaches the driver's terminal like the task's own output). */
export function retryLine(what: string, err: unknown, attempt: number, of: number): string {
  const e = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return `${what} threw ${e}; running it again (retryExceptions; retry ${attempt} of ${of})`;
}
