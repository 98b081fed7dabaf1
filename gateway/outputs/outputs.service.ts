/** @module Reading and cancelling executions for the user who asks: status, filtered events, the timeline, cancel. */
import { BadRequestException, Injectable, NotFoundException, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { getActor, kill } from '../../runtime';
import {
  FINAL_STATUSES,
  RUNNER_NAMESPACE,
  isFinal,
  parseEvent,
  type EventKind,
  type ExecEvent,
  type ExecRecord,
  type ExecStatus,
} from '../../runtime/protocol/services';
import { pruneIndexes, readAllEvents, readExecution, requestCancel, setStatus } from '../../serve/store';
import { superviseExecutions } from '../../serve/supervise';
import type { AuthUser } from '../auth/decorators';
import { GatewayContext } from '../common/context';
import { HttpError } from '../common/errors';

/** What `GET /outputs/status/:fid` answers. */
export interface ExecutionStatus {
  fid: string;
  status: ExecStatus;
  owner: string;
  summary: string;
  flow: string;
  inputs: unknown;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
  error: string | null;
  /** The data of the last `final` event, or null. */
  final: unknown;
}

/** One row of a timeline. */
export type TimelineItem = Omit<ExecutionStatus, 'inputs' | 'final'>;

/** What `GET /timeline` answers: one page, and how many matched in all. */
export interface TimelinePage {
  items: TimelineItem[];
  total: number;
  offset: number;
  limit: number;
}

/** `GET /timeline`'s query, as given (strings). */
export interface TimelineQuery {
  q?: string;
  status?: string;
  offset?: string;
  limit?: string;
}

const ALL_STATUSES: readonly ExecStatus[] = ['starting', 'running', ...FINAL_STATUSES];
const TIMELINE_FIELDS = ['fid', 'status', 'owner', 'summary', 'flow', 'createdAt', 'startedAt', 'endedAt', 'error'] as const;
/** A filtered timeline looks at this many newest executions at most: the search is a scan. */
const SEARCH_SCAN = 10_000;
/** How long DELETE waits for the runner to end the execution itself before killing it. */
const CANCEL_GRACE_MS = 1000;
/** How long killing the runner may take before the gateway ends the execution without it. */
const KILL_WAIT_MS = 500;
const PRUNE_EVERY_MS = 3600_000;
/** How often executions not yet ended are checked for a dead runner (their launcher may be gone too). */
const SUPERVISE_EVERY_MS = 10_000;
const LAST_EVENT_SCAN = 1000;

const num = (v: string | undefined) => (v ? Number(v) : null);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function parseJson(text: string | undefined): unknown {
  try {
    return text === undefined ? null : JSON.parse(text);
  } catch {
    return text;
  }
}

function intParam(name: string, v: string | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new BadRequestException(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}.`);
  return n;
}

/** Executions as one user may see them (their own; an admin: all), read with serve/store's functions. */
@Injectable()
export class OutputsService implements OnModuleInit, OnModuleDestroy {
  private pruneTimer: NodeJS.Timeout | undefined;
  private superviseTimer: NodeJS.Timeout | undefined;
  private supervising: Promise<unknown> | undefined;

  constructor(private readonly gw: GatewayContext) {}

  onModuleInit(): void {
    // Ended executions expire by themselves; their index entries are dropped here.
    const prune = () =>
      this.gw.redis
        .hkeys(this.gw.keys.users)
        .then((users) => pruneIndexes(this.gw.redis, this.gw.keys, users, this.gw.options.retentionMs))
        .catch(() => undefined);
    void prune();
    this.pruneTimer = setInterval(prune, PRUNE_EVERY_MS).unref();
    // Ends executions whose runner died; every gateway of a cluster may run it (the first end wins). One at a time.
    this.superviseTimer = setInterval(() => {
      this.supervising ??= superviseExecutions(this.gw.redis, this.gw.keys)
        .catch((err: unknown) => this.gw.logger.debug({ err: (err as Error).message }, 'execution sweep failed'))
        .finally(() => (this.supervising = undefined));
    }, SUPERVISE_EVERY_MS).unref();
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.pruneTimer);
    clearInterval(this.superviseTimer);
    // A sweep under way uses the driver and Redis, both closed next; a Redis that is gone would hold it forever.
    if (this.supervising) await Promise.race([this.supervising, new Promise((r) => setTimeout(r, 2500).unref())]);
  }

  /** The execution if `user` may see it: its owner and admins may. Anyone else is told it does not exist. */
  async visible(fid: string, user: AuthUser): Promise<ExecRecord> {
    const rec = await readExecution(this.gw.redis, this.gw.keys, fid);
    if (!rec || (rec.owner !== user.name && !user.admin)) throw new NotFoundException(`No execution ${fid} (it may have expired); see GET /timeline for yours.`);
    return rec;
  }

  async status(fid: string, user: AuthUser): Promise<ExecutionStatus> {
    const rec = await this.visible(fid, user);
    const final = await this.lastEvent(fid, (e) => e.kind === 'final');
    return { ...this.row(rec), inputs: parseJson(rec.inputs), final: final?.data ?? null };
  }

  /** The execution's events of the given kinds, in order. */
  async events(fid: string, user: AuthUser, kinds: readonly EventKind[]): Promise<{ fid: string; status: ExecStatus; events: ExecEvent[] }> {
    const rec = await this.visible(fid, user);
    const all = await readAllEvents(this.gw.redis, this.gw.keys, fid);
    return { fid, status: rec.status, events: all.filter((e) => kinds.includes(e.kind)) };
  }

  /**
   * The newest event that matches among the last LAST_EVENT_SCAN. The ones looked for (the final result, the final
   * status) land together at the end, so a long stdout history before them is not read.
   */
  async lastEvent(fid: string, match: (e: ExecEvent) => boolean): Promise<ExecEvent | undefined> {
    const page = (await this.gw.redis.xrevrange(this.gw.keys.events(fid), '+', '-', 'COUNT', LAST_EVENT_SCAN)) as [string, string[]][];
    for (const [id, fields] of page) {
      const e = parseEvent(id, fields);
      if (match(e)) return e;
    }
    return undefined;
  }

  /**
   * Cancels: asks the runner (it aborts its signal and ends itself `cancelled`), waits a moment, and if the execution has
   * not ended by then kills the runner actor and ends it here. Answers within about 1.5 s; 409 if it had ended already.
   */
  async cancel(fid: string, user: AuthUser): Promise<{ fid: string; status: ExecStatus }> {
    const { redis, keys } = this.gw;
    const rec = await this.visible(fid, user);
    const ended = (status: string) =>
      new HttpError(409, `Execution ${fid} has ended already (${status}); there is nothing to cancel.`, { fields: { fid, status } });
    if (isFinal(rec.status)) throw ended(rec.status);
    if (!(await requestCancel(redis, keys, fid))) throw ended((await redis.hget(keys.exec(fid), 'status')) ?? rec.status);
    const statusNow = async () => (await redis.hget(keys.exec(fid), 'status')) as ExecStatus | null;
    const killRunner = () => (async () => kill(await getActor(fid, { namespace: RUNNER_NAMESPACE }), { noRestart: true }))().catch(() => undefined);
    for (const deadline = Date.now() + CANCEL_GRACE_MS; Date.now() < deadline; ) {
      await sleep(50);
      const s = await statusNow();
      if (isFinal(s ?? undefined)) {
        // It honoured its signal; the tasks it started die with it (a kill from here cancels what it owns).
        void killRunner();
        return { fid, status: s! };
      }
    }
    // The runner did not end it: dead, stuck in code that ignores its signal, or never started. End the execution
    // first (the first end wins: a kill seen as the runner's death must not turn it into an error), then kill the runner,
    // which cancels the tasks it started.
    await setStatus(redis, keys, fid, 'cancelled', { message: `cancelled by ${user.name}` });
    await Promise.race([killRunner(), sleep(KILL_WAIT_MS)]);
    return { fid, status: (await statusNow()) ?? 'cancelled' };
  }

  /** The user's executions (an admin's: everyone's), newest first, searched and paged. */
  async timeline(user: AuthUser, query: TimelineQuery): Promise<TimelinePage> {
    const { redis, keys } = this.gw;
    const offset = intParam('offset', query.offset, 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam('limit', query.limit, 20, 1, 200);
    const statuses = (query.status ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    for (const s of statuses) if (!ALL_STATUSES.includes(s as ExecStatus)) throw new BadRequestException(`status must be one or more of ${ALL_STATUSES.join(', ')} (comma-separated), got '${s}'.`);
    const words = (query.q ?? '').toLowerCase().split(/\s+/).filter(Boolean);
    const index = user.admin ? keys.allExecs : keys.userExecs(user.name);
    if (!words.length && !statuses.length) {
      const [total, fids] = await Promise.all([redis.zcard(index), redis.zrevrange(index, offset, offset + limit - 1)]);
      return { items: await this.rows(fids), total, offset, limit };
    }
    const matches = (await this.rows(await redis.zrevrange(index, 0, SEARCH_SCAN - 1))).filter(
      (r) =>
        (!statuses.length || statuses.includes(r.status)) &&
        words.every((w) => `${r.summary} ${r.fid} ${r.flow}`.toLowerCase().includes(w)),
    );
    return { items: matches.slice(offset, offset + limit), total: matches.length, offset, limit };
  }

  private async rows(fids: string[]): Promise<TimelineItem[]> {
    if (!fids.length) return [];
    const pipe = this.gw.redis.pipeline();
    for (const fid of fids) pipe.hmget(this.gw.keys.exec(fid), ...TIMELINE_FIELDS);
    const res = (await pipe.exec()) ?? [];
    const items: TimelineItem[] = [];
    for (const [err, values] of res) {
      if (err) throw err;
      const v = values as (string | null)[];
      // Expired (retention) but still indexed until the next prune: left out.
      if (!v[0]) continue;
      const rec = Object.fromEntries(TIMELINE_FIELDS.map((f, i) => [f, v[i] ?? undefined])) as unknown as ExecRecord;
      items.push(this.row(rec));
    }
    return items;
  }

  private row(rec: ExecRecord): TimelineItem {
    return {
      fid: rec.fid,
      status: rec.status,
      owner: rec.owner,
      summary: rec.summary ?? '',
      flow: rec.flow ?? '',
      createdAt: Number(rec.createdAt),
      startedAt: num(rec.startedAt),
      endedAt: num(rec.endedAt),
      error: rec.error || null,
    };
  }
}
