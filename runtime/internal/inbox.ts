/** @module The inbox: the Redis list where this process receives its task completions and stream notes, read on a blocking connection of its own; and, for a driver, its tasks' log lines. */
import type { Redis } from 'ioredis';
import { Note, type LogMessage } from '../protocol';
import { isFailure } from './object-store';
import { connect } from './redis';
import { failReturns } from './returns';
import type { References } from './references';
import { decode } from './serialization';
import type { StreamTable } from './streams';
import { sleep, type ProcessState } from './tasks';

export class Inbox {
  private blocking: Redis | undefined;
  private sub: Redis | undefined;
  private inboxStarted = false;

  constructor(
    private readonly state: ProcessState,
    private readonly refs: References,
    private readonly streams: StreamTable,
  ) {}

  startInbox(): void {
    if (this.inboxStarted || this.state.closed) return;
    this.inboxStarted = true;
    this.blocking = connect(this.state.address, { blocking: true, name: `nodus:inbox:${this.state.procId}` });
    this.blocking.on('error', () => undefined);
    void this.inboxLoop(this.blocking);
  }

  private async inboxLoop(conn: Redis): Promise<void> {
    const key = this.state.keys.inbox(this.state.procId);
    while (!this.state.closed) {
      try {
        // Capped at 2 s so that shutdown never waits on a blocked connection for long.
        const res = (await conn.callBuffer('BLMPOP', 2, 1, key, 'LEFT', 'COUNT', 1000)) as [Buffer, Buffer[]] | null;
        if (!res) continue;
        for (const raw of res[1]) this.onNote(decode<unknown[]>(raw));
      } catch {
        if (this.state.closed) return;
        await sleep(100);
      }
    }
  }

  private onNote(note: unknown[]): void {
    switch (note[0]) {
      case Note.Done:
        return this.onCompletion(note[1] as string, note[2] as Buffer | null);
      case Note.Item:
        this.streams.get(note[1] as string)?.onItem(note[2] as number, note[3] as string, note[4] as Buffer | null, note[5] as string);
        if (!this.streams.has(note[1] as string)) this.refs.dropHeld(note[3] as string);
        return;
      case Note.End:
        return this.streams.get(note[1] as string)?.onEnd(note[3] as Buffer | null);
      case Note.Credit:
        return this.streams.producer(note[1] as string)?.credit(note[2] as number);
      case Note.Stop:
        return this.streams.producer(note[1] as string)?.stop();
    }
  }

  /** A task or call of this process finished (or failed to be submitted): its waiters go on. */
  onCompletion(id: string, inline: Buffer | null): void {
    const entry = this.state.pending.get(id);
    if (!entry) return; // a duplicate (a retried task), or not ours
    if (inline && isFailure(inline) && !this.streams.has(id)) {
      const after = this.refs.afterLoss(id, entry, inline);
      if (after === 'retry') return;
      inline = after;
    }
    this.state.pending.delete(id);
    if (entry.returns && inline && isFailure(inline)) failReturns(this.state, entry, inline, (rid, bytes) => this.onCompletion(rid, bytes));
    const stream = this.streams.get(id);
    if (stream) stream.onDone(inline);
    else if (inline) this.refs.cacheLocal(id, inline);
    entry.done.resolve();
    for (const listener of this.state.completionListeners) listener(id);
  }

  async subscribeLogs(): Promise<void> {
    this.sub = connect(this.state.address, { blocking: true, name: `nodus:logs:${this.state.procId}` });
    this.sub.on('error', () => undefined);
    this.sub.on('message', (_channel: string, raw: string) => {
      const msgs = JSON.parse(raw) as LogMessage[];
      for (const m of msgs) {
        const out = m.stream === 'stderr' ? process.stderr : process.stdout;
        const prefix = out.isTTY ? `\x1b[36m${m.prefix}\x1b[0m` : m.prefix;
        const text = m.text.endsWith('\n') ? m.text.slice(0, -1) : m.text;
        out.write(text.split('\n').map((l) => `${prefix} ${l}`).join('\n') + '\n');
      }
    });
    await this.sub.subscribe(this.state.keys.logs(this.state.procId));
  }

  /** Closes the inbox's and the logs' connections (at shutdown). */
  close(): void {
    this.blocking?.disconnect();
    this.sub?.disconnect();
  }
}
