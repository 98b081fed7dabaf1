/** @module Helpers for agentic-services tests: requests as curl sends them, and a Server-Sent Events reader. */
import { request } from 'node:http';
import { createParser } from 'eventsource-parser';

/** A cookie jar as `curl -b cookie -c cookie` keeps one. */
export class CookieJar {
  private cookies = new Map<string, string>();
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  take(setCookie: string | string[] | undefined): void {
    for (const c of [setCookie ?? []].flat()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      this.cookies.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
    }
  }
}

/**
 * `curl -b cookie -c cookie -X POST -d 'BODY' URL`, byte for byte: curl's headers, and `-d`'s content type
 * (application/x-www-form-urlencoded) whatever the body is.
 */
export function curlPost(url: string, body: string, jar: CookieJar): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  const headers: Record<string, string> = {
    Host: u.host,
    'User-Agent': 'curl/7.88.1',
    Accept: '*/*',
    'Content-Length': String(Buffer.byteLength(body)),
    'Content-Type': 'application/x-www-form-urlencoded',
  };
  if (jar.header()) headers.Cookie = jar.header();
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'POST', headers }, (res) => {
      jar.take(res.headers['set-cookie']);
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

export interface SseEvent {
  id: string;
  event: string;
  data: { kind: string; data: unknown; at: number } | string;
}

/**
 * Reads an event stream until `eof` (or until `stopAfter` events, then disconnects, as a client that goes away).
 * Resolves to the events received (eof not included) and whether eof came.
 */
export async function readSse(url: string, o: { cookie?: string; lastEventId?: string; stopAfter?: number; timeoutMs?: number } = {}): Promise<{ events: SseEvent[]; eof: boolean }> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), o.timeoutMs ?? 30_000);
  const events: SseEvent[] = [];
  let eof = false;
  try {
    const res = await fetch(url, { headers: { ...(o.cookie ? { cookie: o.cookie } : {}), ...(o.lastEventId ? { 'Last-Event-ID': o.lastEventId } : {}) }, signal: abort.signal });
    if (res.status !== 200) throw new Error(`stream answered ${res.status}: ${await res.text()}`);
    const parser = createParser({
      onEvent: (e) => {
        if (e.event === 'eof') {
          eof = true;
          return;
        }
        events.push({ id: e.id ?? '', event: e.event ?? 'message', data: e.data ? JSON.parse(e.data) : '' });
        if (o.stopAfter && events.length >= o.stopAfter) abort.abort();
      },
    });
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      parser.feed(decoder.decode(chunk, { stream: true }));
      if (eof) break;
    }
  } catch (err) {
    if (!abort.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
  }
  return { events, eof };
}
