/** @module Packing a working dir: what goes in (.gitignore, excludes, node_modules), the content hash, the size limit, unreadable folders, unpacking. */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RuntimeEnvError } from '../../runtime/errors';
import { distRoot } from '../../runtime/internal/launcher';
import { packDir, scanDir, unpackTo } from '../../runtime/internal/packaging';
import { envKey, envModulePath } from '../../runtime/internal/runtime-env';
import { resolveRemoteOptions, resolveRuntimeEnv } from '../../runtime/options';

const what = 'runtimeEnv.workingDir';
let root: string;

function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(root, 'wd-'));
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  return dir;
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'nodus-pack-'));
  // Readable by the unprivileged user the unreadable-folder test runs as.
  chmodSync(root, 0o755);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('packing a working dir', () => {
  test('leaves out what .gitignore files (at any depth), excludes, .git and node_modules say', async () => {
    const dir = tree({
      'main.ts': 'x',
      '.gitignore': 'secret.env\nbuild/\n',
      'secret.env': 'no',
      'build/out.js': 'no',
      'lib/.gitignore': '*.tmp\n',
      'lib/a.ts': 'x',
      'lib/b.tmp': 'no',
      'data/big.csv': 'no',
      'node_modules/dep/index.js': 'no',
      '.git/HEAD': 'no',
    });
    const scan = await scanDir(dir, { what, excludes: ['data/'] });
    expect(scan.files.map((f) => f.rel).sort()).toEqual(['.gitignore', 'lib/.gitignore', 'lib/a.ts', 'main.ts']);
  });

  test('the hash follows the content only: same files, same hash; a changed byte or mode, another', async () => {
    const a = tree({ 'x.ts': 'one', 'sub/y.ts': 'two' });
    const b = tree({ 'x.ts': 'one', 'sub/y.ts': 'two' });
    utimesSync(join(b, 'x.ts'), new Date(2000, 1, 1), new Date(2000, 1, 1));
    const [ha, hb] = [(await scanDir(a, { what })).hash, (await scanDir(b, { what })).hash];
    expect(ha).toBe(hb);
    writeFileSync(join(b, 'sub/y.ts'), 'twO');
    expect((await scanDir(b, { what })).hash).not.toBe(ha);
    const c = tree({ 'x.ts': 'one', 'sub/y.ts': 'two' });
    chmodSync(join(c, 'x.ts'), 0o755);
    expect((await scanDir(c, { what })).hash).not.toBe(ha);
  });

  test('a folder over the limit fails naming the limit and its biggest entries', async () => {
    const dir = tree({ 'small.ts': 'x', 'models/a.bin': 'a'.repeat(3000), 'models/b.bin': 'b'.repeat(3000), 'blob.dat': 'c'.repeat(2000) });
    const err = await scanDir(dir, { what, maxBytes: 4096, limitName: 'NODUS_RUNTIME_ENV_MAX_BYTES' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeEnvError);
    expect((err as Error).message).toMatch(/holds 7\.8 KiB of files, over the limit of 4\.0 KiB \(NODUS_RUNTIME_ENV_MAX_BYTES\)\. Biggest entries: models\/ \(5\.9 KiB\), blob\.dat \(2\.0 KiB\), small\.ts \(1 B\)\. .*excludes/);
  });

  test('a missing folder, or a file given as one, fails saying so', async () => {
    await expect(scanDir(join(root, 'nope'), { what })).rejects.toThrow(/runtimeEnv\.workingDir .*nope does not exist/);
    const dir = tree({ 'f.ts': 'x' });
    await expect(scanDir(join(dir, 'f.ts'), { what })).rejects.toThrow(/is not a folder/);
  });

  test('a folder it cannot read fails naming it and how to leave it out', () => {
    const dir = tree({ 'ok.ts': 'x', 'private/key.pem': 'k' });
    chmodSync(dir, 0o755);
    chmodSync(join(dir, 'private'), 0o000);
    // Root reads everything: the scan then runs as an unprivileged user.
    const script = `require(${JSON.stringify(join(distRoot(), 'runtime/internal/packaging.js'))}).scanDir(${JSON.stringify(dir)}, { what: 'runtimeEnv.workingDir' }).then(() => console.log('read it'), (e) => console.log(e.name + ': ' + e.message))`;
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const out = execFileSync(process.execPath, ['-e', script], { ...asUser, encoding: 'utf8' });
    chmodSync(join(dir, 'private'), 0o755);
    expect(out).toMatch(/RuntimeEnvError: runtimeEnv\.workingDir .*: cannot read private \(EACCES\)\. .*excludes: \['private'\]/);
  });

  test('packs and unpacks files, folders, modes and symlinks as they were', async () => {
    const dir = tree({ 'run.sh': '#!/bin/sh\n', 'src/deep/mod.ts': 'export {}' });
    chmodSync(join(dir, 'run.sh'), 0o755);
    symlinkSync('src/deep/mod.ts', join(dir, 'link.ts'));
    const data = await packDir(await scanDir(dir, { what }));
    const dest = join(root, 'unpacked');
    expect(await unpackTo(data, dest)).toBe(true);
    expect(readFileSync(join(dest, 'src/deep/mod.ts'), 'utf8')).toBe('export {}');
    expect(readlinkSync(join(dest, 'link.ts'))).toBe('src/deep/mod.ts');
    expect(execFileSync('stat', ['-c', '%a', join(dest, 'run.sh')], { encoding: 'utf8' }).trim()).toBe('755');
    // Another unpack to the same place leaves the first as it is.
    expect(await unpackTo(data, dest)).toBe(false);
    expect(existsSync(join(dest, 'run.sh'))).toBe(true);
  });
});

describe('the runtimeEnv option', () => {
  test('typos are rejected naming the right option', () => {
    expect(() => resolveRuntimeEnv({ workinDir: '.' })).toThrow(/Unknown runtimeEnv option 'workinDir'\. Did you mean 'workingDir'\?/);
    expect(() => resolveRemoteOptions({ runtimeEnvs: {} } as never)).toThrow(/Did you mean 'runtimeEnv'\?/);
    expect(() => resolveRuntimeEnv({ env: { PORT: 80 } })).toThrow(/env\.PORT must be a string, got 80; write String\(value\)/);
    expect(() => resolveRuntimeEnv({ env: { NODUS_NODE_ID: 'x' } })).toThrow(/NODUS_NODE_ID is set by the node/);
    expect(() => resolveRuntimeEnv({ excludes: 'data/' })).toThrow(/excludes must be a list of \.gitignore patterns/);
  });

  test('a working dir is made absolute; module paths inside it travel relative to it', () => {
    expect(resolveRuntimeEnv({ workingDir: 'app' })!.workingDir).toBe(join(process.cwd(), 'app'));
    expect(envModulePath('/home/me/app/lib/tasks.ts', '/home/me/app')).toBe('lib/tasks.ts');
    expect(envModulePath('/home/me/other/tasks.ts', '/home/me/app')).toBe('/home/me/other/tasks.ts');
    expect(envModulePath('/home/me/application/x.ts', '/home/me/app')).toBe('/home/me/application/x.ts');
  });

  test("an env's key follows its content and variables, not their order", () => {
    expect(envKey({ pkg: 'p', vars: { A: '1', B: '2' } })).toBe(envKey({ pkg: 'p', vars: { B: '2', A: '1' } }));
    expect(envKey({ pkg: 'p', vars: { A: '1' } })).not.toBe(envKey({ pkg: 'q', vars: { A: '1' } }));
    expect(envKey({ pkg: 'p', vars: { A: '1' } })).not.toBe(envKey({ pkg: 'p', vars: { A: '2' } }));
  });
});
