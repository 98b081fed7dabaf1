/**
 * @module Request bodies: read raw with a size limit, then parsed as JSON whatever the content-type says if it parses
 * (curl -d sends JSON as a form), else as a form. The raw bytes stay available for the proxy.
 */
import { BadRequestException, Injectable, PayloadTooLargeException, type NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import type { z } from 'zod';
import { GatewayContext } from './context';

/** A request's body as read: the bytes, and whether they were JSON. */
export interface RawBody {
  raw: Buffer;
  json: boolean;
}

const bodies = new WeakMap<Request, RawBody>();

/** The raw body of a request (empty when it had none). */
export function rawBodyOf(req: Request): RawBody {
  return bodies.get(req) ?? { raw: Buffer.alloc(0), json: false };
}

function readLimited(req: Request, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const tooLarge = () => new PayloadTooLargeException(`The request body is larger than ${limit} bytes (maxBodyBytes); send less.`);
    if (Number(req.headers['content-length'] ?? 0) > limit) return reject(tooLarge());
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.resume(); // discard the rest; the answer closes the connection
        reject(tooLarge());
      } else chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new BadRequestException(`The request body could not be read: ${err.message}.`));
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/** A form's fields as an object; a repeated name gives an array. */
function formFields(text: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of new URLSearchParams(text)) {
    if (k === '__proto__') continue;
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

/** Parses a body: JSON if it parses, a 400 if it was sent as JSON and does not, else form fields (multipart: undefined). */
export function parseBody(raw: Buffer, contentType = ''): { body: unknown; json: boolean } {
  const text = raw.toString('utf8');
  if (!text.trim()) return { body: undefined, json: false };
  try {
    return { body: JSON.parse(text), json: true };
  } catch (err) {
    if (/[/+]json\b/i.test(contentType)) {
      throw new BadRequestException(`The body is not valid JSON (${(err as Error).message}). Fix it, or send a form as application/x-www-form-urlencoded.`);
    }
  }
  if (/^multipart\//i.test(contentType)) return { body: undefined, json: false };
  return { body: formFields(text), json: false };
}

/** Reads and parses every request's body before routing (Nest's own parsers are off). */
@Injectable()
export class BodyMiddleware implements NestMiddleware {
  constructor(private readonly gw: GatewayContext) {}

  async use(req: Request, res: Response, next: NextFunction): Promise<void> {
    const has = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (!has) return next();
    try {
      const raw = await readLimited(req, this.gw.options.maxBodyBytes);
      const { body, json } = parseBody(raw, req.headers['content-type']);
      bodies.set(req, { raw, json });
      req.body = body;
    } catch (err) {
      // The rest of an oversized or broken body is not read: the connection cannot carry another request.
      res.setHeader('Connection', 'close');
      throw err;
    }
    next();
  }
}

/** Checks a body against a schema; a 400 lists every problem by field. */
export function parseWith<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body ?? {});
  if (r.success) return r.data;
  throw new BadRequestException(r.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
}
