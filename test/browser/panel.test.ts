/** @module The panel in a real browser, as a user goes through it: log in, find a flow, fill its form, watch, cancel, reload, the timeline, routes. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { freePort, spawnGateway, stopProcess, type StartedProcess } from '../../runtime/internal/launcher';
import { app as formService } from '../../services/form/app';
import { app as myService } from '../../services/my_service/app';
import { useCluster } from '../helpers/cluster';
import { screenshot, useBrowser, watchPage, type PageWatch, expectNoPageErrors } from '../helpers/browser';
import { panelFixtures } from './fixtures/service';

/** The page's document, as the functions run in the browser see it (this project compiles without the DOM library). */
declare const document: { querySelectorAll(selector: string): { length: number }; querySelector(selector: string): { getAttribute(name: string): string | null } | null };

// my_service's tasks take 1 to 3 units of 20 ms here instead of seconds.
const cluster = useCluster({ nodes: 1, cpus: 2, env: { NODUS_DEMO_TASK_MS: '20' } });
const b = useBrowser();
let dir: string;
let gateway: StartedProcess | undefined;
let gw: string;
let myPort: number;
let formPort: number;
let fixturesUrl: string;
const services: { close(): Promise<void> }[] = [];
let context: BrowserContext;
let page: Page;
let watch: PageWatch;
/** The executions the tests start, for the later ones. */
const fids: { finished?: string; cancelled?: string } = {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nodus-panel-'));
  const my = await myService.listen({ port: 0 });
  const fx = await panelFixtures.listen({ port: 0 });
  const form = await formService.listen({ port: 0 });
  services.push(my, fx, form);
  myPort = my.port;
  formPort = form.port;
  fixturesUrl = `http://127.0.0.1:${fx.port}/openapi.json`;
  const port = await freePort();
  gateway = await spawnGateway({ address: cluster.address, attached: true, logFile: join(dir, 'gateway.log'), port, register: [`http://localhost:${myPort}/openapi.json`, fixturesUrl, `http://localhost:${formPort}/openapi.json`], sessionDir: dir });
  gw = `http://127.0.0.1:${port}`;
  context = await b.browser.newContext({ viewport: { width: 1200, height: 820 } });
  page = await context.newPage();
  watch = watchPage(page);
});

afterAll(async () => {
  await context?.close();
  if (gateway) await stopProcess(gateway.pid, 3000);
  for (const s of services) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

// No page may break: a script error, a CSP violation or a 5xx fails the test that caused it.
afterEach(() => expectNoPageErrors(watch));

const badge = () => page.locator('#exec .badge');

test('a visitor is sent to log in, a wrong password is refused without saying which part was wrong, and the right one opens the flows', async () => {
  await page.goto(`${gw}/`);
  expect(new URL(page.url()).pathname).toBe('/login');
  await page.getByLabel('User name').fill('admin');
  await page.getByLabel('Password').fill('wrong');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expectText(page.getByRole('alert'), 'Wrong user name or password.');
  expect(await page.getByLabel('User name').inputValue()).toBe('admin');
  await screenshot(page, 'panel', 'login');

  await page.getByLabel('Password').fill('admin');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(`${gw}/`);
  await expectText(page.getByRole('heading', { level: 1 }), 'Flows');
  const cookie = (await context.cookies()).find((c) => c.name === 'nodus_session')!;
  expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax' });
  expect(cookie.expires).toBeGreaterThan(Date.now() / 1000);
});

test("my_service is found by searching; its form keeps an invalid value beside the service's error, then a valid one launches it and its page fills live until finished", async () => {
  await page.goto(`${gw}/`);
  await expect(page.locator('#flows > li:not([hidden])').count()).resolves.toBe(4);
  // Admins see where each flow comes from and whether its service answers.
  await expect(page.locator('#flows .health.ok').count()).resolves.toBe(4);
  await screenshot(page, 'panel', 'flows-all');
  await page.getByLabel('Search').fill('not so agentic');
  await page.waitForFunction(() => document.querySelectorAll('#flows > li:not([hidden])').length === 1);
  await expectText(page.locator('#flows > li:not([hidden]) h2'), 'My Service');
  await page.getByLabel('Search').fill('');
  await page.getByLabel('Tag', { exact: true }).selectOption('test');
  await page.waitForFunction(() => document.querySelectorAll('#flows > li:not([hidden])').length === 1);
  await screenshot(page, 'panel', 'flows');

  await page.getByRole('link', { name: 'My Service' }).click();
  await page.waitForURL(`${gw}/inputs/-/localhost/${myPort}/-/`);
  // getByLabel finds the input only through a label tied to it.
  const tasks = page.getByLabel('Number of Tasks');
  await tasks.fill('600');
  await page.getByRole('button', { name: 'Submit' }).click();
  await page.waitForLoadState();
  await expectText(page.locator('.field.invalid .field-error'), 'Maximum number of concurrent tasks is 500');
  expect(await page.getByLabel('Number of Tasks').inputValue()).toBe('600');
  expect(await page.getByLabel('Number of Tasks').getAttribute('aria-invalid')).toBe('true');
  await expectText(page.locator('#form-errors'), 'Number of Tasks: Maximum number of concurrent tasks is 500');
  await screenshot(page, 'panel', 'inputs-error');

  await page.getByLabel('Number of Tasks').fill('60');
  await page.getByRole('button', { name: 'Submit' }).click();
  await page.waitForURL(/\/status\/[^/]+$/);
  fids.finished = decodeURIComponent(page.url().split('/').pop()!);
  // Seen on the way: the running badge and the number of events growing.
  const seen = new Set<string>();
  let shotLive = false;
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
    const status = (await badge().textContent())!;
    const count = (await page.locator('#count-output').textContent())!;
    seen.add(`count:${count}`);
    seen.add(status);
    if (status === 'running' && Number(count) >= 3 && !shotLive) {
      await screenshot(page, 'panel', 'status-live');
      shotLive = true;
    }
    if (status === 'finished') break;
    await page.waitForTimeout(100);
  }
  expect(seen.has('running')).toBe(true);
  expect(seen.has('finished')).toBe(true);
  expect([...seen].filter((s) => s.startsWith('count:')).length).toBeGreaterThan(2);
  await page.locator('#result-section').waitFor();
  const result = JSON.parse((await page.locator('#result').textContent())!) as { i: number }[];
  expect(result.map((r) => r.i).sort((x, y) => x - y)).toEqual(Array.from({ length: 60 }, (_, i) => i));
  await expectText(page.locator('#events .ev-markdown').first(), 'have results');
  await expect(page.locator('#cancel').isHidden()).resolves.toBe(true);
  // stdout of the entrypoint, in its own tab, reached with the keyboard as a tab list is.
  await page.getByRole('tab', { name: /Output/ }).focus();
  await page.keyboard.press('ArrowRight');
  expect(await page.getByRole('tab', { name: /stdout/ }).getAttribute('aria-selected')).toBe('true');
  await expectText(page.locator('#stdio'), 'have result 100.00%');
  // The inputs, and how to run the same again with curl.
  await page.getByRole('tab', { name: 'Inputs' }).click();
  await expectText(page.locator('#curl'), `-d '{"tasks":60}' ${gw}/-/localhost/${myPort}/-/`);
  await page.getByRole('tab', { name: /Output/ }).click();
  await screenshot(page, 'panel', 'status-finished');
});

test("every form element is drawn with a label tied to it and its limits as attributes; the service's field and form errors come back with the values kept", async () => {
  await page.goto(`${gw}/inputs/-/localhost/${formPort}/-/`);
  expect(await page.locator('.prose h1').first().textContent()).toBe('Every form element');
  expect(await page.locator('.prose em').allTextContents()).toEqual(['Markdown', 'HTML']);
  const attrs = async (label: string, names: string[]) =>
    Object.fromEntries(await Promise.all(names.map(async (n) => [n, await page.getByLabel(label, { exact: true }).getAttribute(n)])));
  expect(await attrs('Name *', ['required', 'maxlength', 'type'])).toEqual({ required: '', maxlength: '40', type: 'text' });
  expect(await attrs('Code (three capitals)', ['pattern', 'value'])).toEqual({ pattern: '[A-Z]{3}', value: 'ABC' });
  expect(await attrs('Count (1–10)', ['type', 'min', 'max', 'step', 'value'])).toEqual({ type: 'number', min: '1', max: '10', step: '1', value: '3' });
  expect(await attrs('Secret', ['type'])).toEqual({ type: 'password' });
  expect(await attrs('Notes', ['rows'])).toEqual({ rows: '3' });
  expect(await attrs('Day', ['type'])).toEqual({ type: 'date' });
  expect(await attrs('Time', ['type'])).toEqual({ type: 'time' });
  expect(await attrs('When', ['type'])).toEqual({ type: 'datetime-local' });
  expect(await attrs('I agree to the terms', ['type'])).toEqual({ type: 'checkbox' });
  expect(await page.getByLabel('Size', { exact: true }).inputValue()).toBe('m');
  expect(await attrs('Toppings', ['multiple'])).toEqual({ multiple: '' });
  expect(await attrs('Files', ['type', 'disabled'])).toEqual({ type: 'file', disabled: '' });

  await page.getByLabel('Name *', { exact: true }).fill('root');
  await page.getByLabel('Count (1–10)').fill('9');
  await page.getByLabel('Size', { exact: true }).selectOption('s');
  await page.getByLabel('Toppings').selectOption(['cheese', 'olives']);
  await page.getByRole('button', { name: 'Submit' }).click();
  await page.locator('#form-errors').waitFor();
  const summary = (await page.locator('#form-errors').textContent())!;
  expect(summary).toContain('A small size holds at most 5');
  expect(summary).toContain('Name: That name is reserved');
  expect(summary).toContain('Agree: Please agree to the terms.');
  expect(await page.getByLabel('Name *', { exact: true }).getAttribute('aria-invalid')).toBe('true');
  expect(await page.getByLabel('Name *', { exact: true }).inputValue()).toBe('root');
  expect(await page.getByLabel('Count (1–10)').inputValue()).toBe('9');
  expect(await page.getByLabel('Size', { exact: true }).inputValue()).toBe('s');
  expect(await page.getByLabel('Toppings').evaluate((el) => [...(el as unknown as { selectedOptions: { value: string }[] }).selectedOptions].map((o) => o.value))).toEqual(['cheese', 'olives']);

  await page.getByLabel('Name *', { exact: true }).fill('Ada');
  await page.getByLabel('I agree to the terms').check();
  await page.getByLabel('Size', { exact: true }).selectOption('l');
  await page.getByRole('button', { name: 'Submit' }).click();
  await page.waitForURL(/\/status\/[^/]+$/);
  await expectText(badge(), 'finished', 20_000);
  const result = JSON.parse((await page.locator('#result').textContent())!) as Record<string, unknown>;
  expect(result).toMatchObject({ name: 'Ada', code: 'ABC', count: 9, agree: true, size: 'l', toppings: ['cheese', 'olives'] });
});

test('a running execution is cancelled from its page after confirming, and the page says cancelled', async () => {
  await page.goto(`${gw}/inputs/-/localhost/${myPort}/-/`);
  await page.getByLabel('Number of Tasks').fill('500');
  await page.getByRole('button', { name: 'Submit' }).click();
  await page.waitForURL(/\/status\/[^/]+$/);
  fids.cancelled = decodeURIComponent(page.url().split('/').pop()!);
  await expectText(badge(), 'running', 20_000);
  await page.getByRole('button', { name: 'Cancel', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Cancel this execution?' });
  await dialog.waitFor();
  await screenshot(page, 'panel', 'status-cancel-dialog');
  await dialog.getByRole('button', { name: 'Cancel execution' }).click();
  await expectText(badge(), 'cancelled', 5000);
  await expect(page.locator('#cancel').isHidden()).resolves.toBe(true);
  await expectText(page.locator('#announcer'), 'Execution cancelled');
});

test("reloading a finished execution's page shows every one of its events again", async () => {
  const main = (await (await page.request.get(`${gw}/outputs/main/${fids.finished}`)).json()) as { events: { kind: string }[] };
  const markdown = main.events.filter((e) => e.kind === 'markdown').length;
  expect(markdown).toBeGreaterThan(1);
  await page.goto(`${gw}/status/${fids.finished}`);
  await page.reload();
  await expectText(badge(), 'finished');
  await page.waitForFunction((n) => document.querySelectorAll('#events .ev-markdown').length === n, markdown);
  await page.locator('#result-section').waitFor();
  // Replayed history does not move the page back to running.
  await expectText(badge(), 'finished');
});

test('the timeline lists both executions newest first, filters them by status, updates a running row live, and a row opens its page', async () => {
  await page.goto(`${gw}/timeline`);
  const fidsShown = await page.locator('#timeline tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-fid')));
  expect(fidsShown.indexOf(fids.cancelled!)).toBeGreaterThanOrEqual(0);
  expect(fidsShown.indexOf(fids.cancelled!)).toBeLessThan(fidsShown.indexOf(fids.finished!));
  await screenshot(page, 'panel', 'timeline');

  await page.getByLabel('Status').selectOption('cancelled');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(/status=cancelled/);
  expect(await page.locator('#timeline tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-fid')))).toEqual([fids.cancelled]);

  // One launched through the API appears on the first page and its row follows it to the end, without a reload.
  const launched = await page.request.post(`${gw}/-/localhost/${myPort}/-/`, { data: { tasks: 80 } });
  const { fid } = (await launched.json()) as { fid: string };
  await page.goto(`${gw}/timeline`);
  const row = page.locator(`#timeline tbody tr[data-fid="${fid}"]`);
  await expect(row.getAttribute('data-status')).resolves.toMatch(/starting|running/);
  await page.waitForFunction((f) => document.querySelector(`#timeline tr[data-fid="${f}"]`)?.getAttribute('data-status') === 'finished', fid, { timeout: 20_000 });
  await expectText(row.locator('.badge'), 'finished');

  await page.locator(`#timeline tbody tr[data-fid="${fids.finished}"] td`).first().click();
  await page.waitForURL(`${gw}/status/${fids.finished}`);
});

test('an admin sees each registered service with its health and flow count, and registers and unregisters one', async () => {
  await page.goto(`${gw}/admin/routes`);
  const fixtureRow = page.locator('#routes tbody tr', { hasText: fixturesUrl });
  await expectText(fixtureRow.locator('.health'), 'answers');
  await expectText(fixtureRow.locator('td.num'), '2');
  await screenshot(page, 'panel', 'routes');

  await fixtureRow.getByRole('button', { name: 'Unregister' }).click();
  await expectText(page.getByRole('status'), 'Unregistered');
  await expect(page.locator('#routes tbody tr', { hasText: fixturesUrl }).count()).resolves.toBe(0);

  const nobody = `http://127.0.0.1:${await freePort()}/openapi.json`;
  await page.getByLabel('openapi.json or /-/routes URL').fill(nobody);
  await page.getByRole('button', { name: 'Register', exact: true }).click();
  await expectText(page.locator('#route-error'), 'Cannot reach');
  expect(await page.getByLabel('openapi.json or /-/routes URL').inputValue()).toBe(nobody);

  await page.getByLabel('openapi.json or /-/routes URL').fill(fixturesUrl);
  await page.getByRole('button', { name: 'Register', exact: true }).click();
  await expectText(page.getByRole('status'), 'Registered');
  await expectText(page.locator('#routes tbody tr', { hasText: fixturesUrl }).locator('td.num'), '2');
});

test('logging out ends the session: the pages send the visitor back to log in', async () => {
  await page.goto(`${gw}/`);
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL(/\/login\?out=1$/);
  await expectText(page.getByRole('status'), 'You are logged out.');
  await page.goto(`${gw}/timeline`);
  expect(new URL(page.url()).pathname).toBe('/login');
});

/** Waits until the locator's text contains `text`. */
async function expectText(locator: ReturnType<Page['locator']>, text: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = (await locator.first().textContent({ timeout: timeoutMs }).catch(() => '')) ?? '';
    if (last.includes(text)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`expected "${text}" in ${String(locator)}, last saw "${last}"`);
}
