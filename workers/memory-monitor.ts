/** @module The memory monitor (Ray's): watches the resident memory of worker processes that asked for `memory`, and kills one that grows past it, so that it, not the node, goes down. */
import { readFile } from 'node:fs/promises';

/** Checked this often: a process allocating fast can overshoot by what it allocates in this time. */
const INTERVAL_MS = 100;
const PAGE = 4096;

interface Watched {
  limit: number;
  onExceed(rss: number): void;
}

/** Resident bytes of a process (Linux /proc; undefined elsewhere or once it is gone). */
export async function residentBytes(pid: number): Promise<number | undefined> {
  try {
    const statm = await readFile(`/proc/${pid}/statm`, 'utf8');
    return Number(statm.split(' ')[1]) * PAGE;
  } catch {
    return undefined;
  }
}

export class MemoryMonitor {
  private readonly watched = new Map<number, Watched>();
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  /** Calls `onExceed` once if process `pid` holds more than `limit` bytes; until unwatch(pid). */
  watch(pid: number, limit: number, onExceed: (rss: number) => void): void {
    this.watched.set(pid, { limit, onExceed });
    this.timer ??= setInterval(() => void this.check(), INTERVAL_MS);
    this.timer.unref();
  }

  unwatch(pid: number): void {
    this.watched.delete(pid);
    if (!this.watched.size && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private async check(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (const [pid, w] of this.watched) {
        const rss = await residentBytes(pid);
        if (rss !== undefined && rss > w.limit && this.watched.get(pid) === w) {
          this.watched.delete(pid);
          w.onExceed(rss);
        }
      }
    } finally {
      this.busy = false;
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.watched.clear();
  }
}

/** Bytes as MiB for messages. */
export function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}
