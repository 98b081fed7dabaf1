/**
 * @module The ingress's short way to a replica on its own machine: the replica's loopback port, as a reverse proxy
 * would, instead of an actor call through Redis. Used only after the port answered a probe with that replica's name
 * and pid (a replica on another machine, or in another network namespace, is reached by actor calls).
 */
import { Agent, request, type ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import type { ForwardedRequest } from '../../runtime/protocol/deploy';
import { PROBE_HEADER, type ReplicaInfo } from './replica';

/** Hop-by-hop headers (RFC 9110 7.6.1): never forwarded. */
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer']);

const agent = new Agent({ keepAlive: true, maxSockets: Infinity });

/** The direct path failed. `sent`: whether the request may have reached the app (false: the port refused it). */
export class DirectError extends Error {
  constructor(
    message: string,
    readonly sent: boolean,
    readonly code?: string,
  ) {
    super(message);
  }
}

/**
 * The port to send a replica's requests to directly, or undefined: off (NODUS_SERVE_DIRECT=0), another machine, or a
 * port that does not answer as that replica.
 */
export async function probeDirect(info: ReplicaInfo, name: string): Promise<number | undefined> {
  if (process.env.NODUS_SERVE_DIRECT === '0' || info.hostname !== hostname()) return undefined;
  try {
    const res = await fetch(`http://127.0.0.1:${info.port}/`, { headers: { [PROBE_HEADER]: '1' }, signal: AbortSignal.timeout(1000) });
    const body = (await res.json()) as { replica?: string; pid?: number };
    return body.replica === name && body.pid === info.pid ? info.port : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Sends `fwd` to the app on `port` and streams its answer to `res` as it comes. Rejects with a DirectError when no
 * answer began; an answer cut off after it began ends the client's response the same way.
 */
export function proxyDirect(port: number, fwd: ForwardedRequest, res: ServerResponse): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(fwd.headers)) if (!HOP.has(k) && k !== 'content-length') headers[k] = v;
  if (fwd.body) headers['content-length'] = String(fwd.body.byteLength);
  return new Promise<void>((resolve, reject) => {
    const out = request({ host: '127.0.0.1', port, method: fwd.method, path: fwd.url, headers, agent }, (up) => {
      const answer: Record<string, string | string[]> = {};
      for (let i = 0; i + 1 < up.rawHeaders.length; i += 2) {
        const key = up.rawHeaders[i].toLowerCase();
        if (HOP.has(key)) continue;
        const prev = answer[key];
        answer[key] = prev === undefined ? up.rawHeaders[i + 1] : [prev, up.rawHeaders[i + 1]].flat();
      }
      res.writeHead(up.statusCode ?? 502, answer);
      if (/^text\/event-stream/i.test(String(up.headers['content-type'] ?? ''))) res.flushHeaders();
      up.pipe(res);
      // The client went away: so does the app's response. The app cut it off: so does the client's.
      res.once('close', () => {
        if (!up.complete) up.destroy();
        resolve();
      });
      up.once('error', () => res.destroy());
      up.once('close', () => {
        if (!up.complete) res.destroy();
      });
    });
    out.once('error', (err: NodeJS.ErrnoException) => {
      if (res.headersSent) return resolve();
      reject(new DirectError(err.message, err.code !== 'ECONNREFUSED', err.code));
    });
    out.end(fwd.body ?? undefined);
  });
}
