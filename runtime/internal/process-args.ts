/** @module Shared handling for the cluster's entry processes: arguments, readiness, and exit when the parent goes. */
import { parseArgs } from 'node:util';

export function entryArgs(extra: Record<string, { type: 'string' | 'boolean' }>) {
  return parseArgs({
    options: { address: { type: 'string' }, attached: { type: 'boolean' }, namespace: { type: 'string' }, ...extra },
    strict: true,
  }).values as Record<string, string | boolean | undefined>;
}

/** Tells the launcher we are up; an attached process stops when its parent goes away. */
export function announceReady(info: Record<string, unknown>, attached: boolean, stop: () => Promise<void>): void {
  process.send?.({ ready: info });
  if (attached) {
    process.on('disconnect', () => {
      // The parent may have taken Redis with it, and a clean stop waits on Redis: give it a few seconds.
      setTimeout(() => process.exit(0), 3000).unref();
      void stop();
    });
  }
}

/** SIGTERM / SIGINT stop the process cleanly once; a second signal exits at once. */
export function onSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = () => {
    if (stopping) process.exit(1);
    stopping = true;
    void stop();
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}
