/** @module Server-sent event streams of executions, fed by the gateway's one EventHub. */
import { Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { Request, Response } from 'express';
import { isFinal, type ExecEvent, type ExecRecord } from '../../runtime/protocol/services';
import type { AuthUser } from '../auth/decorators';
import { GatewayContext } from '../common/context';
import { EventHub, compareIds, type Subscription } from './event-hub';
import { OutputsService } from './outputs.service';
import { openEventStream, resumeFrom } from '../common/sse';

/** A comment line this often keeps proxies and browsers from closing a quiet stream. */
const PING_MS = 3000;

function isFinalStatus(e: ExecEvent): boolean {
  return e.kind === 'status' && isFinal((e.data as { status?: string } | null)?.status);
}

/** Owns the EventHub and the open event streams; ends them (without eof) when the gateway closes. */
@Injectable()
export class StreamService implements OnModuleInit, OnModuleDestroy {
  private readonly hub: EventHub;
  /** The open streams' writers, for the shared ping and for ending them at shutdown. */
  private readonly open = new Set<{ ping(): void; end(eof: boolean): void }>();
  private pingTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly gw: GatewayContext,
    private readonly outputs: OutputsService,
  ) {
    this.hub = new EventHub(gw.redis, gw.keys, gw.options.address, gw.logger);
  }

  onModuleInit(): void {
    this.hub.start();
    // One timer for every stream, not one each.
    this.pingTimer = setInterval(() => {
      for (const s of this.open) s.ping();
    }, PING_MS);
    this.pingTimer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.pingTimer);
    // No eof: a client reconnects with Last-Event-ID (to this gateway restarted, or another) and misses nothing.
    for (const s of [...this.open]) s.end(false);
    await this.hub.stop();
  }

  /** Number of open event streams. */
  get streams(): number {
    return this.open.size;
  }

  /**
   * Streams an execution's events to `res` from after `lastEventId`: each as `id`, `event` (its kind) and `data`
   * (`{ kind, data, at }`), then `event: eof` after the final status. Error stacks go to the owner only.
   */
  async stream(req: Request, res: Response, fid: string, user: AuthUser, lastEventId: string | undefined): Promise<void> {
    const after = resumeFrom(lastEventId);
    const rec: ExecRecord = await this.outputs.visible(fid, user);
    const owner = rec.owner === user.name;

    openEventStream(req, res);

    let ended = false;
    // Only called once `sub` below exists: from the listener, the socket closing, or shutdown.
    const writer = {
      ping: () => void (ended || res.write(': ping\n\n')),
      end: (eof: boolean) => {
        if (ended) return;
        ended = true;
        this.open.delete(writer);
        sub.close();
        if (eof && !res.writableEnded) res.write('event: eof\ndata: {}\n\n');
        res.end();
      },
    };
    const sub: Subscription = this.hub.subscribe(fid, after, (events) => {
      let chunk = '';
      let last = false;
      for (const e of events) {
        const data = e.kind === 'error' && !owner && e.data && typeof e.data === 'object' ? { ...(e.data as object), stack: undefined } : e.data;
        chunk += `id: ${e.id}\nevent: ${e.kind}\ndata: ${JSON.stringify({ kind: e.kind, data, at: e.at })}\n\n`;
        if (isFinalStatus(e)) {
          last = true;
          break;
        }
      }
      res.write(chunk);
      if (last) writer.end(true);
    });
    this.open.add(writer);
    res.on('close', () => writer.end(false));
    try {
      await sub.ready;
    } catch (err) {
      this.gw.logger.warn({ fid, err: (err as Error).message }, 'event stream could not catch up');
      writer.end(false);
      return;
    }
    if (ended) return;
    // A client that already had the final status (its eof lost with the connection) gets its eof now.
    const status = await this.gw.redis.hget(this.gw.keys.exec(fid), 'status').catch(() => null);
    if (!isFinal(status ?? undefined)) return;
    const final = await this.outputs.lastEvent(fid, isFinalStatus).catch(() => undefined);
    if (final && compareIds(final.id, sub.lastId) <= 0) writer.end(true);
  }
}
