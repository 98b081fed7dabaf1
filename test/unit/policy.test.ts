import { dispatchOrder, fits, give, isFeasible, largestNode, reclaim, take } from '../../runtime/internal/policy';
import { shapeKey } from '../../runtime/protocol';

describe('scheduling policy', () => {
  test('a demand fits only when every resource it names is free', () => {
    expect(fits({ CPU: 1 }, { CPU: 2 })).toBe(true);
    expect(fits({ CPU: 2 }, { CPU: 1 })).toBe(false);
    expect(fits({ CPU: 1, accel: 1 }, { CPU: 4 })).toBe(false);
    expect(fits({ CPU: 0 }, {})).toBe(true);
    expect(fits({ CPU: 0.5 }, { CPU: 0.5 })).toBe(true);
  });

  test('taking never oversubscribes and giving never exceeds the total', () => {
    const total = { CPU: 2, GPU: 1 };
    let free = take(total, { CPU: 1 });
    free = take(free, { CPU: 1, GPU: 1 });
    expect(free).toEqual({ CPU: 0, GPU: 0 });
    expect(() => take(free, { CPU: 1 })).toThrow(/oversubscription/);
    free = give(free, { CPU: 1 }, total);
    free = give(free, { CPU: 5 }, total);
    expect(free).toEqual({ CPU: 2, GPU: 0 });
  });

  test('a CPU lent by a waiting task is reclaimed even when that takes the node below zero, and nothing fits until it is back', () => {
    const total = { CPU: 2 };
    let free = take(total, { CPU: 2 });
    free = give(free, { CPU: 2 }, total); // the task waits in get(): its CPUs are lent
    free = take(free, { CPU: 1 }); // a subtask runs on them
    free = reclaim(free, { CPU: 2 }); // the task goes on before the subtask ends
    expect(free).toEqual({ CPU: -1 });
    expect(fits({ CPU: 1 }, free)).toBe(false);
    expect(give(free, { CPU: 1 }, total)).toEqual({ CPU: 0 });
  });

  test('fractions do not drift', () => {
    let free: Record<string, number> = { CPU: 1 };
    for (let i = 0; i < 10; i++) free = take(free, { CPU: 0.1 });
    expect(free.CPU).toBe(0);
    expect(fits({ CPU: 0.1 }, free)).toBe(false);
  });

  test('a demand is feasible only if some alive node could hold it when idle', () => {
    const nodes = [
      { state: 'alive' as const, total: { CPU: 2 } },
      { state: 'dead' as const, total: { CPU: 64 } },
    ];
    expect(isFeasible({ CPU: 2 }, nodes)).toBe(true);
    expect(isFeasible({ CPU: 64 }, nodes)).toBe(false);
    expect(largestNode(nodes)).toEqual({ CPU: 2 });
  });

  test('larger demands are offered resources first', () => {
    const order = dispatchOrder([{ demand: { CPU: 1 } }, { demand: { CPU: 4 } }, { demand: { CPU: 1, GPU: 1 } }]);
    expect(order.map((s) => s.demand)).toEqual([{ CPU: 4 }, { CPU: 1, GPU: 1 }, { CPU: 1 }]);
  });

  test('shape keys are canonical: order-free, zero-free', () => {
    expect(shapeKey({ GPU: 1, CPU: 2 })).toBe(shapeKey({ CPU: 2, GPU: 1, accel: 0 }));
    expect(shapeKey({ CPU: 1 })).toBe('CPU1');
    expect(shapeKey({})).toBe('none');
  });
});
