import { ConfigError } from '../../runtime/errors';
import { resolveInitOptions, resolveNodeResources, resolveRemoteOptions } from '../../runtime/options';

describe('remote options', () => {
  test('defaults: one CPU, three retries', () => {
    expect(resolveRemoteOptions()).toEqual({ demand: { CPU: 1 }, maxRetries: 3, name: undefined, numReturns: 1 });
  });

  test('CPUs, GPUs and custom resources make the demand', () => {
    expect(resolveRemoteOptions({ numCpus: 2, numGpus: 1, resources: { accel: 1 } }).demand).toEqual({ CPU: 2, GPU: 1, accel: 1 });
    expect(resolveRemoteOptions({ numCpus: 0.5 }).demand).toEqual({ CPU: 0.5 });
  });

  test('an unknown option name is rejected with the valid ones and the likely one', () => {
    expect(() => resolveRemoteOptions({ num_cpus: 2 } as never)).toThrow(ConfigError);
    expect(() => resolveRemoteOptions({ num_cpus: 2 } as never)).toThrow("Unknown remote option 'num_cpus'. Did you mean 'numCpus'? Valid options: numCpus, numGpus, resources, maxRetries, name, runtimeEnv, memory, schedulingStrategy, labelSelector, placementGroup, bundleIndex, numReturns, retryExceptions.");
  });

  test('out-of-range values are errors, never clamped', () => {
    expect(() => resolveRemoteOptions({ numCpus: -1 })).toThrow('numCpus must be a number >= 0, got -1.');
    expect(() => resolveRemoteOptions({ maxRetries: 1.5 })).toThrow(/maxRetries must be an integer >= -1/);
    expect(() => resolveRemoteOptions({ resources: { 'bad name': 1 } })).toThrow(/resource name 'bad name'/);
    expect(() => resolveRemoteOptions({ resources: { CPU: 1 } })).toThrow(/give CPU, GPU and memory with numCpus/);
  });

  test('maxRetries -1 means no limit', () => {
    expect(resolveRemoteOptions({ maxRetries: -1 }).maxRetries).toBe(Number.MAX_SAFE_INTEGER);
  });
});

describe('init and node options', () => {
  test('address comes from the option, else NODUS_ADDRESS', () => {
    expect(resolveInitOptions({}, {}).address).toBeUndefined();
    expect(resolveInitOptions({}, { NODUS_ADDRESS: 'redis://h:1' }).address).toBe('redis://h:1');
    expect(resolveInitOptions({ address: 'auto' }, { NODUS_ADDRESS: 'redis://h:1' }).address).toBe('auto');
  });

  test('a malformed address or unknown init option is a clear error', () => {
    expect(() => resolveInitOptions({ address: 'localhost:6379' }, {})).toThrow(/redis:\/\/127.0.0.1:6379/);
    expect(() => resolveInitOptions({ adress: 'x' } as never, {})).toThrow(/Unknown init option 'adress'/);
  });

  test('node resources default to the machine CPUs and its free memory', () => {
    expect(resolveNodeResources({}, 8, 1000)).toEqual({ CPU: 8, memory: 1000 });
    expect(resolveNodeResources({ numCpus: 0, numGpus: 2, resources: { accel: 2 }, memory: 5 }, 8)).toEqual({ CPU: 0, GPU: 2, accel: 2, memory: 5 });
  });
});
