import { PlacementGroup } from '../../runtime';
import { decode, encode } from '../../runtime/internal/serialization';
import { resolveActorOptions, resolveNodeLabels, resolveRemoteOptions } from '../../runtime/options';
import { planBundles } from '../../runtime/internal/placement-plan';
import { matchLabels, queueFor, type Resources } from '../../runtime/protocol';

const pg = { id: 'pg1', bundleSpecs: [{ CPU: 1 }, { CPU: 2, GPU: 1 }] as Resources[] };
const nodes = (...cpus: number[]) => cpus.map((c, i) => ({ id: `n${i}`, free: { CPU: c } }));

describe('placement options', () => {
  test('bad strategies, bundle indexes, label selectors and retry lists are refused naming the fix', () => {
    expect(() => resolveRemoteOptions({ schedulingStrategy: 'RANDOM' as never })).toThrow(/schedulingStrategy must be 'DEFAULT', 'SPREAD' or \{ nodeId, soft \}/);
    expect(() => resolveRemoteOptions({ schedulingStrategy: { nodeId: 'n', sotf: true } as never })).toThrow(/Did you mean 'soft'/);
    expect(() => resolveRemoteOptions({ placementGroup: pg, bundleIndex: 2 })).toThrow(/bundleIndex must be -1 \(any bundle\) or 0\.\.1/);
    expect(() => resolveRemoteOptions({ placementGroup: pg, bundleIndex: 0, numCpus: 2 })).toThrow(/more than bundle 0 of its placement group holds/);
    expect(() => resolveRemoteOptions({ placementGroup: pg, schedulingStrategy: 'SPREAD' })).toThrow(/leave schedulingStrategy and labelSelector out/);
    expect(() => resolveRemoteOptions({ bundleIndex: 0 })).toThrow(/bundleIndex needs placementGroup/);
    expect(() => resolveRemoteOptions({ labelSelector: { zone: 1 } as never })).toThrow(/labelSelector must be an object of label names to strings/);
    expect(() => resolveRemoteOptions({ retryExceptions: [42] as never })).toThrow(/retryExceptions must be true, false, or a list of error classes or names/);
    expect(() => resolveRemoteOptions({ numReturns: 0 })).toThrow(/numReturns must be an integer >= 1/);
    expect(() => resolveRemoteOptions({ memory: 1.5 })).toThrow(/memory \(bytes\) must be an integer/);
    expect(() => resolveActorOptions({ resources: { memory: 1 } })).toThrow(/give CPU, GPU and memory with numCpus \/ numGpus \/ memory/);
  });

  test('options resolve to placements and job fields', () => {
    expect(resolveRemoteOptions({ placementGroup: pg }).bundleChoices).toEqual([0, 1]);
    expect(resolveRemoteOptions({ placementGroup: pg, numCpus: 2 }).placement).toEqual({ kind: 'bundle', pg: 'pg1', bundle: 1 });
    expect(resolveRemoteOptions({ schedulingStrategy: { nodeId: 'node-1' } }).placement).toEqual({ kind: 'node', node: 'node-1', soft: false });
    expect(resolveRemoteOptions({ retryExceptions: [RangeError, 'TimeoutError'] }).retryExceptions).toEqual(['RangeError', 'TimeoutError']);
    expect(resolveActorOptions({ memory: 1024 }).demand).toEqual({ CPU: 0, memory: 1024 });
  });

  test('a placement group passed to a task still places its work there; node labels are checked', () => {
    const sent = decode(encode(new PlacementGroup('pg9', [{ CPU: 1 }], 'PACK', 'g')).bytes);
    expect(resolveRemoteOptions({ placementGroup: sent as PlacementGroup }).placement).toEqual({ kind: 'bundle', pg: 'pg9', bundle: 0 });
    expect(resolveNodeLabels({ zone: 'a' })).toEqual({ zone: 'a' });
    expect(() => resolveNodeLabels({ zone: 1 })).toThrow(/label zone must be a string/);
    expect(() => resolveNodeLabels(['a'])).toThrow(/labels must be a JSON object/);
  });

  test('label selectors match exactly, by negation and by lists', () => {
    expect(matchLabels({ zone: 'a' }, { zone: 'a' })).toBe(true);
    expect(matchLabels({ zone: 'a' }, {})).toBe(false);
    expect(matchLabels({ zone: '!a' }, {})).toBe(true);
    expect(matchLabels({ zone: '!a' }, { zone: 'a' })).toBe(false);
    expect(matchLabels({ zone: 'in(a, b)' }, { zone: 'b' })).toBe(true);
    expect(matchLabels({ zone: '!in(a,b)' }, { zone: 'b' })).toBe(false);
    // Equal selectors name one queue whatever their key order.
    expect(queueFor('task.CPU1', { kind: 'labels', labels: { a: '1', b: '2' } }).queue).toBe(queueFor('task.CPU1', { kind: 'labels', labels: { b: '2', a: '1' } }).queue);
  });
});

describe('planBundles', () => {
  const two = [{ CPU: 1 }, { CPU: 1 }];
  test('each strategy places bundles as it says, or not at all', () => {
    expect(planBundles(two, 'PACK', [], nodes(2, 2))).toEqual(['n0', 'n0']);
    expect(planBundles(two, 'PACK', [], nodes(1, 1))).toEqual(['n0', 'n1']);
    expect(planBundles(two, 'STRICT_PACK', [], nodes(1, 1))).toBeNull();
    expect(planBundles(two, 'SPREAD', [], nodes(2, 2))).toEqual(['n0', 'n1']);
    expect(planBundles(two, 'SPREAD', [], nodes(2, 0))).toEqual(['n0', 'n0']);
    expect(planBundles(two, 'STRICT_SPREAD', [], nodes(2, 0))).toBeNull();
    expect(planBundles([{ CPU: 1 }, { CPU: 1 }, { CPU: 1 }], 'STRICT_SPREAD', [], nodes(1, 1))).toBeNull();
  });

  test('placed again after a node died, the bundles still held stay and the strategy still holds', () => {
    expect(planBundles(two, 'STRICT_SPREAD', ['n1', ''], nodes(2, 2, 2))).toEqual(['n1', 'n0']);
    expect(planBundles(two, 'STRICT_PACK', ['n1', ''], nodes(2, 1))).toEqual(['n1', 'n1']);
    expect(planBundles(two, 'STRICT_PACK', ['n1', ''], nodes(2, 0))).toBeNull();
  });
});
