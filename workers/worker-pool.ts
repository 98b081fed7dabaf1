/** @module The node agent's pool of worker processes: spawned ahead, reused, replaced when they die. */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { entryPoint } from '../runtime/internal/launcher';
import type { AgentToWorker, Lease, WorkerToAgent } from './ipc';

const TSX_LOADER = pathToFileURL(join(dirname(require.resolve('tsx/package.json')), 'dist', 'loader.mjs')).href;

/** A task a worker began: which, in which job (task `index` of a bundle), whose output it prints, and under what name. */
export interface TaskStart {
  id: string;
  job: string;
  index: number;
  owner: string;
  name: string;
}

/** Why a worker process went away while it ran a task. */
export class WorkerExit extends Error {
  constructor(
    readonly code: number | null,
    readonly signal: NodeJS.Signals | null,
  ) {
    super(signal ? `killed by ${signal}` : `exited with code ${code}`);
  }
}

export interface PoolEvents {
  /** A task printed something. */
  onLog(worker: WorkerProcess, stream: 'stdout' | 'stderr', text: string): void;
}

export class WorkerProcess {
  readonly id = `worker-${randomBytes(5).toString('hex')}`;
  readonly proc: ChildProcess;
  readonly ready: Promise<void>;
  /** The task it runs now, if any. */
  task: TaskStart | undefined;
  /** Whose terminal its output goes to when no task says (an actor's process). */
  label: { owner: string; name: string; actorId?: string } | undefined;
  /** How it ended, once it has. */
  exit: WorkerExit | undefined;
  alive = true;
  /** Reached 'ready': a worker that dies before is broken (bad install), not a task's victim. */
  started = false;
  idleSince = Date.now();
  private current: { resolve(reason: string | undefined): void; reject(e: Error): void; onStart(t: TaskStart): void; onBlocked(blocked: boolean): void; onIdle(): void } | undefined;

  /** `cwd`: a runtime env's unpacked working dir (default: the agent's). */
  constructor(env: NodeJS.ProcessEnv, events: PoolEvents, onExit: (w: WorkerProcess) => void, cwd?: string) {
    this.proc = fork(entryPoint('worker'), [], {
      env: { ...env, NODUS_WORKER_ID: this.id },
      cwd,
      // Users' modules may be TypeScript, CommonJS or ESM: tsx's loader handles all three.
      execArgv: [...process.execArgv, '--import', TSX_LOADER],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'advanced',
    });
    let markReady!: () => void;
    let failStart!: (e: Error) => void;
    this.ready = new Promise((res, rej) => {
      markReady = () => {
        this.started = true;
        res();
      };
      failStart = rej;
    });
    this.ready.catch(() => undefined);
    this.proc.on('message', (m: WorkerToAgent) => {
      if (m.t === 'ready') markReady();
      else if (m.t === 'log') events.onLog(this, m.stream, m.text);
      else if (m.t === 'start' && this.current) {
        this.task = { id: m.id, job: m.job, index: m.index, owner: m.owner, name: m.name };
        this.current.onStart(this.task);
      } else if (m.t === 'blocked' && this.current) this.current.onBlocked(m.blocked);
      else if (m.t === 'idle' && this.current) this.current.onIdle();
      else if (m.t === 'done' && this.current) {
        const c = this.current;
        this.current = undefined;
        c.resolve(m.reason);
      }
    });
    // Output that bypasses process.stdout (native code, a crash report) still reaches the driver.
    for (const [stream, name] of [
      [this.proc.stdout, 'stdout'],
      [this.proc.stderr, 'stderr'],
    ] as const) {
      if (stream) createInterface({ input: stream }).on('line', (line) => events.onLog(this, name, `${line}\n`));
    }
    this.proc.on('exit', (code, signal) => {
      this.alive = false;
      this.exit = new WorkerExit(code, signal);
      failStart(this.exit);
      this.current?.reject(this.exit);
      this.current = undefined;
      onExit(this);
    });
    this.proc.on('error', () => undefined);
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  /**
   * Runs a lease: its first task, then the next ones of the same queue while there are any. `onStart`
   * hears of each task as it begins (the first included). Resolves when the lease is over (with the
   * reason if the worker could not go on); rejects with WorkerExit if the process dies first. `onBlocked`
   * hears when a task starts and stops waiting in get()/wait(); `onIdle` when the queue ran dry and the
   * worker waits a moment for the next job itself.
   */
  async lease(
    lease: Lease,
    first: TaskStart,
    onStart: (t: TaskStart) => void,
    onBlocked: (blocked: boolean) => void = () => undefined,
    onIdle: () => void = () => undefined,
  ): Promise<string | undefined> {
    this.task = first;
    onStart(first);
    try {
      await this.ready;
      if (!this.alive) throw this.exit ?? new WorkerExit(null, null);
      return await new Promise<string | undefined>((resolve, reject) => {
        this.current = { resolve, reject, onStart, onBlocked, onIdle };
        this.send({ t: 'lease', lease });
      });
    } finally {
      this.task = undefined;
      this.idleSince = Date.now();
    }
  }

  send(m: AgentToWorker): void {
    if (this.alive && this.proc.connected) this.proc.send(m);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.alive) this.proc.kill(signal);
  }
}

export interface PoolOptions {
  env: NodeJS.ProcessEnv;
  /** Current directory of its workers (a runtime env's unpacked working dir). @default the agent's */
  cwd?: string;
  /** Workers kept warm; more are started when tasks need them. */
  size: number;
  /** Extra workers idle for this long are stopped. */
  idleTimeoutMs?: number;
}

export class WorkerPool {
  private readonly idle: WorkerProcess[] = [];
  readonly all = new Set<WorkerProcess>();
  private reaper: NodeJS.Timeout;
  private closed = false;
  private startFailures = 0;

  constructor(
    private readonly o: PoolOptions,
    private readonly events: PoolEvents & { onWorkerExit(w: WorkerProcess): void; onStartFailure(w: WorkerProcess, times: number): void },
  ) {
    for (let i = 0; i < o.size; i++) this.idle.push(this.spawn());
    this.reaper = setInterval(() => this.reap(), 1000);
    this.reaper.unref();
  }

  private spawn(): WorkerProcess {
    const w = new WorkerProcess(this.o.env, this.events, (dead) => this.onExit(dead), this.o.cwd);
    this.all.add(w);
    return w;
  }

  private onExit(dead: WorkerProcess): void {
    this.all.delete(dead);
    const i = this.idle.indexOf(dead);
    if (i >= 0) this.idle.splice(i, 1);
    this.events.onWorkerExit(dead);
    // A worker that cannot even start would otherwise be respawned in a tight loop.
    this.startFailures = dead.started ? 0 : this.startFailures + 1;
    if (this.startFailures) this.events.onStartFailure(dead, this.startFailures);
    const delay = this.startFailures ? Math.min(100 * 2 ** this.startFailures, 10_000) : 0;
    // Keep the warm pool full after a crash.
    setTimeout(() => {
      if (!this.closed && this.all.size < this.o.size) this.idle.push(this.spawn());
    }, delay).unref();
  }

  acquire(): WorkerProcess {
    const w = this.idle.pop();
    return w ?? this.spawn();
  }

  release(w: WorkerProcess): void {
    if (w.alive && !this.closed) this.idle.push(w);
  }

  private reap(): void {
    const cutoff = Date.now() - (this.o.idleTimeoutMs ?? 10_000);
    while (this.all.size > this.o.size && this.idle.length && this.idle[0].idleSince < cutoff) {
      const w = this.idle.shift()!;
      w.send({ t: 'exit' });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.reaper);
    const exits = [...this.all].map((w) => new Promise<void>((r) => (w.alive ? w.proc.once('exit', () => r()) : r())));
    for (const w of this.all) w.kill('SIGKILL');
    await Promise.all(exits);
  }
}
