/** @module The panel's cluster page in a real browser: nodes with their usage, and a task failure appearing live. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { get } from '../../runtime';
import { freePort, spawnGateway, stopProcess, type StartedProcess } from '../../runtime/internal/launcher';
import { screenshot, useBrowser, watchPage, type PageWatch, expectNoPageErrors } from '../helpers/browser';
import { useCluster } from '../helpers/cluster';
import { explode, tally } from '../fixtures/state-tasks';

const cluster = useCluster({ nodes: 2, cpus: 1 });
const b = useBrowser();
let dir: string;
let gateway: StartedProcess | undefined;
let gw: string;
let context: BrowserContext;
let page: Page;
let watch: PageWatch;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nodus-cluster-page-'));
  const port = await freePort();
  gateway = await spawnGateway({ address: cluster.address, attached: true, logFile: join(dir, 'gateway.log'), port, sessionDir: dir });
  gw = `http://127.0.0.1:${port}`;
  context = await b.browser.newContext({ viewport: { width: 1200, height: 900 } });
  page = await context.newPage();
  watch = watchPage(page);
  await page.goto(`${gw}/cluster`);
  await page.getByLabel('User name').fill('admin');
  await page.getByLabel('Password').fill('admin');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(`${gw}/cluster`);
});

afterAll(async () => {
  await context?.close();
  if (gateway) await stopProcess(gateway.pid, 3000);
  rmSync(dir, { recursive: true, force: true });
});

afterEach(() => expectNoPageErrors(watch));

test('the cluster page lists both nodes with their CPU usage, and the tasks that ran', async () => {
  await get([tally.remote(1), tally.remote(2)]);
  await page.reload();
  for (const a of cluster.agents) {
    const row = page.locator(`#nodes-table tr[data-node="${a.nodeId}"]`);
    await row.waitFor();
    expect(await row.textContent()).toMatch(/alive.*CPU.*\/ 1/s);
  }
  await page.locator('#tasks-table td', { hasText: 'tally' }).first().waitFor({ timeout: 15_000 });
  expect(await page.getByRole('link', { name: 'Cluster' }).getAttribute('aria-current')).toBe('page');
});

test('a task that fails shows up among the recent failures, with its error and node, without reloading the page', async () => {
  const ref = explode.remote('in the panel');
  await expect(get(ref)).rejects.toThrow('exploded on purpose: in the panel');
  const row = page.locator(`#failures-table tr[data-task="${ref.id}"]`);
  await row.waitFor({ timeout: 20_000 });
  const text = (await row.textContent()) ?? '';
  expect(text).toContain('RangeError: exploded on purpose: in the panel');
  expect(cluster.agents.some((a) => text.includes(a.nodeId))).toBe(true);
  await screenshot(page, 'cluster', 'failure');
});
