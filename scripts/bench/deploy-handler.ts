/** @module The trivial handler of the benchmark's deploy section: `{"ok":true}` for any request, as a plain Node (req, res) handler. */
import type { IncomingMessage, ServerResponse } from 'node:http';

const BODY = JSON.stringify({ ok: true });

export function handler(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(BODY) });
  res.end(BODY);
}
