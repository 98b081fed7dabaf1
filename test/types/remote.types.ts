/** Type tests: checked by `tsc --noEmit` in `npm test`; a @ts-expect-error that stops erroring fails the build. */
import { expectTypeOf } from 'expect-type';
import { get, put, remote, wait, type ObjectRef, type Ref } from '../../runtime';

const square = remote(async function square(x: number) {
  return x * x;
});
const greet = remote(function greet(name: string, times?: number) {
  return { text: name.repeat(times ?? 1) };
});

export async function typeTests(): Promise<void> {
  expectTypeOf(square.remote(3)).toEqualTypeOf<ObjectRef<number>>();
  expectTypeOf(greet.remote('a')).toEqualTypeOf<ObjectRef<{ text: string }>>();
  expectTypeOf(await get(square.remote(3))).toEqualTypeOf<number>();
  expectTypeOf(await square.remote(3)).toEqualTypeOf<number>();
  expectTypeOf(await get([square.remote(1), greet.remote('x')] as const)).toEqualTypeOf<[number, { text: string }]>();
  expectTypeOf(await get([square.remote(1), square.remote(2)])).toEqualTypeOf<number[]>();
  const big = await put(new Float64Array(2));
  expectTypeOf(big).toEqualTypeOf<Ref<Float64Array<ArrayBuffer>>>();
  expectTypeOf(await get(big)).toEqualTypeOf<Float64Array<ArrayBuffer>>();
  const sum = remote(function sum(a: Float64Array) {
    return a.length;
  });
  sum.remote(big);
  // @ts-expect-error a plain object is not a ref
  sum.remote({ id: 'x' });
  // An ObjectRef of the right type may stand for an argument.
  square.remote(square.remote(2));
  const [ready] = await wait([square.remote(1)]);
  expectTypeOf(ready).toEqualTypeOf<ObjectRef<number>[]>();

  // @ts-expect-error a string is not a number
  square.remote('3');
  // @ts-expect-error a ref to a string is not a ref to a number
  square.remote(greet.remote('x'));
  // @ts-expect-error too few arguments
  greet.remote();
  // @ts-expect-error remote functions are not called directly
  square(3);
  // @ts-expect-error unknown option
  square.options({ numCPUs: 1 });
}

import { getActor, kill, type ActorHandle, type ObjectRefGenerator } from '../../runtime';

class Counter {
  private n = 0;
  incr(by = 1) {
    return (this.n += by);
  }
  async load(name: string) {
    return { name };
  }
  async *count(to: number) {
    for (let i = 0; i < to; i++) yield i;
  }
}
const CounterActor = remote(Counter, { maxRestarts: 2 });
const tokens = remote(async function* tokens(n: number) {
  for (let i = 0; i < n; i++) yield `t${i}`;
});

export async function actorTypeTests(): Promise<void> {
  const c = CounterActor.remote();
  expectTypeOf(c).toEqualTypeOf<ActorHandle<Counter>>();
  expectTypeOf(c.incr.remote(5)).toEqualTypeOf<ObjectRef<number>>();
  expectTypeOf(c.load.remote('x')).toEqualTypeOf<ObjectRef<{ name: string }>>();
  expectTypeOf(c.count.remote(3)).toEqualTypeOf<ObjectRefGenerator<number>>();
  expectTypeOf(tokens.remote(2)).toEqualTypeOf<ObjectRefGenerator<string>>();
  for await (const ref of c.count.remote(3)) expectTypeOf(await get(ref)).toEqualTypeOf<number>();
  const same = await getActor<Counter>('global', { namespace: 'app' });
  expectTypeOf(same.incr.remote()).toEqualTypeOf<ObjectRef<number>>();
  await kill(c, { noRestart: false });

  // @ts-expect-error a wrong argument type to c.incr.remote does not compile
  c.incr.remote('5');
  // @ts-expect-error methods are not called directly
  c.incr(5);
  // @ts-expect-error no such method
  c.decr.remote();
  // @ts-expect-error wrong constructor arguments
  CounterActor.remote(1, 2, 3);
  // @ts-expect-error unknown actor option
  remote(Counter, { maxRestart: 2 });
}
