/** @module Nest's own log lines go to the gateway's pino logger (JSON on stderr), like every other nodus process. */
import type { LoggerService } from '@nestjs/common';
import type { Logger } from 'pino';

/** A Nest LoggerService over pino; Nest's chatty start-up lines (routes mapped...) become debug. */
export class NestPinoLogger implements LoggerService {
  constructor(private readonly pino: Logger) {}
  log(message: unknown, ...rest: unknown[]): void {
    this.pino.debug({ context: rest.at(-1) }, String(message));
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.pino.error({ context: rest.at(-1), detail: rest.length > 1 ? rest[0] : undefined }, String(message));
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.pino.warn({ context: rest.at(-1) }, String(message));
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.pino.debug({ context: rest.at(-1) }, String(message));
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.pino.trace({ context: rest.at(-1) }, String(message));
  }
}
