import { ConfigError, NodusError, NotInitializedError, TaskError, WorkerCrashedError, fromFailure, toFailure } from '../../runtime/errors';
import { remote } from '../../runtime';

describe('errors', () => {
  test('a remote error round-trips with name, message, stack, fields and cause chain', () => {
    const original = Object.assign(new TypeError('bad', { cause: new Error('root') }), { code: 'E1' });
    const back = fromFailure(JSON.parse(JSON.stringify(toFailure(original, 'task', 'f'))));
    expect(back).toBeInstanceOf(TaskError);
    expect(back).toBeInstanceOf(NodusError);
    const cause = back.cause as TypeError & { code: string; cause: Error };
    expect(cause.name).toBe('TypeError');
    expect(cause.message).toBe('bad');
    expect(cause.stack).toBe(original.stack);
    expect(cause.code).toBe('E1');
    expect(cause.cause.message).toBe('root');
    expect((back as TaskError).taskName).toBe('f');
  });

  test('every error has a stable code and says whether a retry may help', () => {
    expect(new WorkerCrashedError('x')).toMatchObject({ code: 'WORKER_CRASHED', retryable: true, name: 'WorkerCrashedError' });
    expect(new ConfigError('x')).toMatchObject({ code: 'CONFIG', retryable: false });
    expect(fromFailure({ kind: 'crash', task: 't', name: 'WorkerCrashedError', message: 'm' })).toBeInstanceOf(WorkerCrashedError);
  });

  test('thrown non-errors still become a readable failure', () => {
    expect(toFailure('just a string', 'task', 'f').message).toBe('just a string');
    expect(toFailure({ a: 1 }, 'task', 'f').message).toContain('{"a":1}');
  });
});

describe('remote()', () => {
  const double = remote(function double(x: number) {
    return 2 * x;
  });

  test('calling a remote function directly shows the right call', () => {
    expect(() => (double as unknown as (x: number) => number)(21)).toThrow('double is a remote function and cannot be called directly. Call double.remote(21)');
  });

  test('.remote() before init() says to call init()', () => {
    expect(() => double.remote(1)).toThrow(NotInitializedError);
  });

  test('options() returns a new handle and checks option names at once', () => {
    const two = double.options({ numCpus: 2 });
    expect(two).not.toBe(double);
    expect(two.name).toBe('double');
    expect(() => double.options({ cpus: 2 } as never)).toThrow(/Valid options: numCpus/);
  });

  test('remote() of a class makes an actor class whose options are checked at once', () => {
    class Counter {
      incr() {
        return 1;
      }
    }
    const actor = remote(Counter, { maxRestarts: 1 });
    expect(actor.name).toBe('Counter');
    expect(() => remote(Counter, { maxRestart: 1 } as never)).toThrow(/Unknown actor option 'maxRestart'. Did you mean 'maxRestarts'\?/);
    expect(() => actor.options({ lifetime: 'forever' } as never)).toThrow(/lifetime must be 'detached'/);
    expect(() => actor.remote()).toThrow(NotInitializedError);
  });
});
