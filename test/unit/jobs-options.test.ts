/** @module What a job is submitted with: the entrypoint as the shell will run it, the driver's demand, option typos. */
import { execFileSync } from 'node:child_process';
import { resolveEntrypoint, resolveJobDemand, resolveSubmitJob, shellCommand } from '../../jobs/options';

test('words after -- become one command line the shell runs with each word as it was', () => {
  const words = ['printf', '%s|', "it's", 'a b', '$HOME', '`x`', 'plain-word_1.ts'];
  const line = shellCommand(words);
  expect(line).toBe(`printf '%s|' 'it'\\''s' 'a b' '$HOME' '\`x\`' plain-word_1.ts`);
  expect(execFileSync('/bin/sh', ['-c', line], { encoding: 'utf8' })).toBe("it's|a b|$HOME|`x`|plain-word_1.ts|");
});

test('an entrypoint is a command line or its words, never empty', () => {
  expect(resolveEntrypoint('npx tsx main.ts')).toBe('npx tsx main.ts');
  expect(resolveEntrypoint(['tsx', 'main.ts'])).toBe('tsx main.ts');
  expect(() => resolveEntrypoint('  ')).toThrow("entrypoint must be the command that starts the driver, e.g. 'npx tsx main.ts'.");
  expect(() => resolveEntrypoint([])).toThrow(/as a list, must be non-empty words/);
});

test('a driver holds no resources unless asked; custom resources are checked as a task’s are', () => {
  expect(resolveJobDemand({})).toEqual({});
  expect(resolveJobDemand({ numCpus: 1, numGpus: 0, resources: { accel: 1 } })).toEqual({ CPU: 1, accel: 1 });
  expect(() => resolveJobDemand({ numCpus: -1 })).toThrow('numCpus must be a number >= 0, got -1.');
  expect(() => resolveJobDemand({ resources: { CPU: 1 } })).toThrow(/give CPU, GPU and memory with numCpus \/ numGpus \/ memory/);
  expect(() => resolveSubmitJob({ entrypoint: 'x', numCpu: 1 } as never)).toThrow(/Unknown submitJob option 'numCpu'\. Did you mean 'numCpus'\?/);
});
