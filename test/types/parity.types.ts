/** Type tests of numReturns, scheduling and placement options: checked by `tsc --noEmit` in `npm test`. */
import { expectTypeOf } from 'expect-type';
import { get, placementGroup, remote, type ObjectRef, type PlacementGroup } from '../../runtime';

const split = remote({ numReturns: 3 }, function split(s: string): [number, string, boolean] {
  return [s.length, s, !s];
});
const single = remote(function single(x: number) {
  return x;
});

export async function parityTypeTests(): Promise<void> {
  // One ref per element of the returned tuple.
  expectTypeOf(split.remote('ab')).toEqualTypeOf<[ObjectRef<number>, ObjectRef<string>, ObjectRef<boolean>]>();
  const [n, s, b] = split.remote('ab');
  expectTypeOf(await get(n)).toEqualTypeOf<number>();
  expectTypeOf(await get(s)).toEqualTypeOf<string>();
  expectTypeOf(await get(b)).toEqualTypeOf<boolean>();
  // Async functions too; options() keeps numReturns, or changes it.
  const pair = remote({ numReturns: 2 }, async function pair() {
    return [1, 'one'] as [number, string];
  });
  expectTypeOf(pair.remote()).toEqualTypeOf<[ObjectRef<number>, ObjectRef<string>]>();
  expectTypeOf(pair.options({ maxRetries: 1 }).remote()).toEqualTypeOf<[ObjectRef<number>, ObjectRef<string>]>();
  expectTypeOf(single.remote(1)).toEqualTypeOf<ObjectRef<number>>();
  expectTypeOf(single.options({ schedulingStrategy: 'SPREAD' }).remote(1)).toEqualTypeOf<ObjectRef<number>>();
  // An array return with numReturns: refs of its element type.
  const many = remote({ numReturns: 4 }, function many() {
    return [1, 2, 3, 4];
  });
  expectTypeOf(many.remote()).toEqualTypeOf<ObjectRef<number>[]>();

  const pg: PlacementGroup = placementGroup([{ CPU: 1 }], { strategy: 'STRICT_SPREAD' });
  single.options({ placementGroup: pg, bundleIndex: 0, memory: 2 ** 20, retryExceptions: [TypeError, 'TimeoutError'] }).remote(1);
  single.options({ schedulingStrategy: { nodeId: 'node-1', soft: true }, labelSelector: { zone: 'a' } }).remote(1);
  // @ts-expect-error not a strategy
  single.options({ schedulingStrategy: 'RANDOM' });
  // @ts-expect-error not a placement strategy
  placementGroup([{ CPU: 1 }], { strategy: 'PACKED' });
  // @ts-expect-error label values are strings
  single.options({ labelSelector: { zone: 1 } });
}
