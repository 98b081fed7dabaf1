/**
 * @module `WS /session` (Cornserve's gateway session): unit tasks invoked over one WebSocket. Each message is
 * `{ id, task: { kind, modelId, ...options }, input, stream? }`; the answer is `{ id, output }` or `{ id, error }`, and a
 * streamed LLM call sends `{ id, token, text }` per token, then `{ id, done: true }`.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Request } from 'express';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AuthService } from '../auth/auth.service';
import { AppsService, type UnitTaskSpec } from './apps.service';

interface SessionMessage {
  id: string | number;
  task: UnitTaskSpec;
  input: unknown;
  stream?: boolean;
}

/** Serves WS /session on the gateway's HTTP server; a connection needs the same login as any route (cookie or API key). */
export function attachSession(server: Server, auth: AuthService, apps: AppsService): WebSocketServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });
  server.on('upgrade', (req: IncomingMessage, socket, head) => {
    if (new URL(req.url ?? '/', 'http://x').pathname !== '/session') return;
    void auth.userOf(withCookies(req)).then(
      (user) => {
        if (!user) {
          socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\n\r\nLog in first (POST /api/login), or send an x-nodus-api-key header.\n');
          return;
        }
        wss.handleUpgrade(req, socket, head, (ws) => serve(ws, apps));
      },
      () => socket.destroy(),
    );
  });
  return wss;
}

/** The auth service reads cookies the way cookie-parser leaves them on an express request. */
function withCookies(req: IncomingMessage): Request {
  const cookies = Object.fromEntries(
    (req.headers.cookie ?? '')
      .split(';')
      .map((c) => c.trim().split('='))
      .filter((kv) => kv.length >= 2)
      .map(([k, ...v]) => [k, decodeURIComponent(v.join('='))]),
  );
  return Object.assign(req, { cookies }) as unknown as Request;
}

function serve(ws: WebSocket, apps: AppsService): void {
  const send = (m: unknown) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(m));
  ws.on('message', (raw) => {
    let msg: SessionMessage;
    try {
      msg = JSON.parse(String(raw)) as SessionMessage;
    } catch (err) {
      send({ error: `not JSON: ${(err as Error).message}` });
      return;
    }
    void (async () => {
      try {
        if (msg.stream && msg.task?.kind === 'llm') {
          const task = (await apps.unit(msg.task)) as { stream(input: unknown): AsyncGenerator<{ token: number; text: string }> };
          for await (const t of task.stream(msg.input)) send({ id: msg.id, token: t.token, text: t.text });
          send({ id: msg.id, done: true });
        } else send({ id: msg.id, output: await apps.invokeTask(msg.task, msg.input) });
      } catch (err) {
        send({ id: msg?.id, error: (err as Error).message });
      }
    })();
  });
}
