/** @module Structured logs of the cluster's own processes (head, node agents), as JSON lines on stderr. */
import pino from 'pino';

export function createLogger(name: string): pino.Logger {
  return pino({ name, level: process.env.NODUS_LOG_LEVEL ?? 'info' }, pino.destination(2));
}
