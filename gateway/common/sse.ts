/** @module Server-sent events: the one way the gateway starts an event stream and reads where a client resumes from. */
import { BadRequestException } from '@nestjs/common';
import type { Request, Response } from 'express';

/** A Redis stream id, as a client sends it back in Last-Event-ID. */
const STREAM_ID = /^\d+(-\d+)?$/;

/** Where a stream resumes: after the Last-Event-ID the client sent, or from the start. Throws 400 on a malformed id. */
export function resumeFrom(lastEventId: string | undefined): string {
  const after = lastEventId?.trim() || '0';
  if (!STREAM_ID.test(after)) throw new BadRequestException(`Last-Event-ID must be an event id such as 1700000000000-0, got '${after}'.`);
  return after;
}

/** Sends the headers of an event stream at once (no proxy buffering, no caching). */
export function openEventStream(req: Request, res: Response): void {
  res.status(200);
  res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('Connection', 'keep-alive');
  res.setHeader('X-Accel-Buffering', 'no');
  res.flushHeaders();
  // Events are small and must go out at once, not wait for Nagle to fill a packet.
  req.socket.setNoDelay(true);
}
