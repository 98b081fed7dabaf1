/** @module The panel in a real browser under hostile input and load: nothing a service writes runs, forms need their token, 1,000 events/s render. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { freePort, spawnGateway, stopProcess, type StartedProcess } from '../../runtime/internal/launcher';
import { ARTIFACTS, screenshot, useBrowser, watchPage, type PageWatch, expectNoPageErrors } from '../helpers/browser';
import { useCluster } from '../helpers/cluster';
import { panelFixtures } from './fixtures/service';

/** The page's globals, as the functions run in the browser see them (this project compiles without the DOM library). */
declare const window: { __xss?: unknown; __panelStats: PanelStats; __probe: { maxLagMs: number; maxFrameGapMs: number } };
declare const document: { querySelectorAll(selector: string): { length: number }; getElementById(id: string): { textContent: string | null; hasAttribute(name: string): boolean } | null };
declare function setInterval(fn: () => void, ms: number): unknown;
declare function requestAnimationFrame(fn: (t: number) => void): unknown;
declare const performance: { now(): number };

interface PanelStats {
  received: number;
  rendered: number;
  frames: number;
  longestFlushMs: number;
  firstReceivedAt: number;
  firstOutputAt: number;
  lastReceivedAt: number;
  lastRenderedAt: number;
}

const cluster = useCluster({ nodes: 1, cpus: 2 });
const b = useBrowser();
let dir: string;
let gateway: StartedProcess | undefined;
let gw: string;
let flowBase: string;
let server: { close(): Promise<void>; port: number } | undefined;
let context: BrowserContext;
let page: Page;
let watch: PageWatch;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nodus-panel-sec-'));
  server = await panelFixtures.listen({ port: 0 });
  const port = await freePort();
  gateway = await spawnGateway({ address: cluster.address, attached: true, logFile: join(dir, 'gateway.log'), port, register: [`http://127.0.0.1:${server.port}/openapi.json`], sessionDir: dir });
  gw = `http://127.0.0.1:${port}`;
  flowBase = `/-/127.0.0.1/${server.port}/-`;
  context = await b.browser.newContext({ viewport: { width: 1200, height: 820 } });
  page = await context.newPage();
  watch = watchPage(page);
  await page.goto(`${gw}/login`);
  await page.getByLabel('User name').fill('admin');
  await page.getByLabel('Password').fill('admin');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(`${gw}/`);
});

afterAll(async () => {
  await context?.close();
  if (gateway) await stopProcess(gateway.pid, 3000);
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

// No page may break: a script error, a CSP violation or a 5xx fails the test that caused it.
afterEach(() => expectNoPageErrors(watch));

/** Elements and attributes through which script could have run. */
const RUNNABLE = 'script:not([src]), [onerror], [onload], [onclick], iframe, object, embed, a[href^="javascript:" i], form[action^="javascript:" i]';

async function expectNothingRan(): Promise<void> {
  expect(await page.evaluate(() => window.__xss)).toBeUndefined();
  expect(await page.evaluate((sel) => document.querySelectorAll(sel).length, RUNNABLE)).toBe(0);
  expect(watch.dialogs).toEqual([]);
}

test('nothing a service writes runs in the page: its texts, form labels, markdown and html elements, and its markdown, html and other events', async () => {
  // The flow's name, description, tags and author are on the flows page.
  const flows = await page.goto(`${gw}/`);
  const csp = flows!.headers()['content-security-policy'];
  expect(csp).toContain("script-src 'self'");
  expect(csp).not.toContain('unsafe-inline');
  await expectNothingRan();
  expect(await page.locator('#flows h2', { hasText: 'Hostile' }).textContent()).toContain(`<img src=x onerror=`);

  await page.goto(`${gw}/inputs${flowBase}/hostile`);
  // Labels are text, tied to their inputs; the values are attribute values, not markup.
  const input = page.getByLabel(`<img src=x onerror="window.__xss='img';alert(1)"><script>window.__xss='script';alert(2)</script> label`);
  expect(await input.inputValue()).toBe(`"><script>window.__xss='value'</script>`);
  expect(await page.getByRole('heading', { name: 'Hostile form' }).count()).toBe(1);
  await expectNothingRan();
  await screenshot(page, 'panel-security', 'hostile-form');

  await page.getByRole('button', { name: /Go$/ }).click();
  await page.waitForURL(/\/status\//);
  await page.waitForFunction(() => document.getElementById('result')?.textContent !== '');
  await page.locator('#events .ev-action').waitFor();
  // The markup that is allowed shows; what could run is gone.
  expect(await page.locator('#events .ev-markdown strong').first().textContent()).toBe('event');
  expect(await page.locator('#events .ev-html em').first().textContent()).toBe('html');
  expect(await page.locator('#events .ev-text').textContent()).toContain(`<script>window.__xss='script'`);
  expect(await page.locator('#events .ev-action a').count()).toBe(0);
  await page.getByRole('tab', { name: /stdout/ }).click();
  expect(await page.locator('#stdio').textContent()).toContain(`<script>window.__xss='script';alert(2)</script> on stdout`);
  // Give any image error handler time to fire, had one survived.
  await page.waitForTimeout(300);
  await expectNothingRan();
  await screenshot(page, 'panel-security', 'hostile-status');
});

test("panel forms posted without the session's token are refused, and change nothing", async () => {
  const timeline = async () => ((await (await page.request.get(`${gw}/timeline`, { headers: { accept: 'application/json' } })).json()) as { total: number }).total;
  const before = await timeline();
  const launch = await page.request.post(`${gw}/inputs${flowBase}/paced`, { form: { events: '1', rate: '1' }, maxRedirects: 0 });
  expect(launch.status()).toBe(403);
  const forged = await page.request.post(`${gw}/inputs${flowBase}/paced`, { form: { events: '1', rate: '1', _csrf: 'forged' }, maxRedirects: 0 });
  expect(forged.status()).toBe(403);
  expect(await timeline()).toBe(before);

  expect((await page.request.post(`${gw}/admin/routes/unregister`, { form: { url: `http://127.0.0.1:${server!.port}/openapi.json` }, maxRedirects: 0 })).status()).toBe(403);
  expect(((await (await page.request.get(`${gw}/flow`)).json()) as unknown[]).length).toBe(2);

  expect((await page.request.post(`${gw}/logout`, { form: {}, maxRedirects: 0 })).status()).toBe(403);
  expect((await page.request.get(`${gw}/api/me`)).status()).toBe(200);

  // A login form must come from this gateway's login page too.
  const other = await b.browser.newContext();
  try {
    const login = await other.request.post(`${gw}/login`, { form: { name: 'admin', password: 'admin' }, maxRedirects: 0 });
    expect(login.status()).toBe(403);
    expect(login.headers()['set-cookie'] ?? '').not.toContain('nodus_session=');
  } finally {
    await other.close();
  }
});

/** Runs the paced flow and watches its page render; returns what the page measured. */
async function renderRun(events: number, rate: number) {
  const res = await page.request.post(`${gw}${flowBase}/paced`, { data: { events, rate } });
  const { fid } = (await res.json()) as { fid: string };
  await page.goto(`${gw}/status/${fid}`);
  // A probe of responsiveness: how late a 16 ms timer fires, and the longest gap between frames.
  await page.evaluate(() => {
    const probe = { maxLagMs: 0, maxFrameGapMs: 0 };
    window.__probe = probe;
    let due = performance.now() + 16;
    setInterval(() => {
      const now = performance.now();
      probe.maxLagMs = Math.max(probe.maxLagMs, now - due);
      due = now + 16;
    }, 16);
    let last = performance.now();
    const frame = (t: number) => {
      probe.maxFrameGapMs = Math.max(probe.maxFrameGapMs, t - last);
      last = t;
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  });
  // Switching tabs mid-stream answers at once: a raw mouse click (no waiting for the tab to hold still, as its
  // count changes every frame) until the panel shows.
  await page.waitForFunction(() => window.__panelStats.rendered > 200);
  const box = (await page.getByRole('tab', { name: /stdout/ }).boundingBox())!;
  const t0 = Date.now();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  await page.waitForFunction(() => !document.getElementById('panel-stdio')?.hasAttribute('hidden'), undefined, { polling: 'raf' });
  const tabSwitchMs = Date.now() - t0;
  await page.getByRole('tab', { name: /Output/ }).click();
  await page.waitForFunction((n) => window.__panelStats.rendered >= n && document.getElementById('count-output')?.textContent === String(n), events, { timeout: 60_000, polling: 100 });
  await page.locator('#result-section').waitFor();
  const stats = await page.evaluate(() => window.__panelStats);
  const probe = await page.evaluate(() => window.__probe);
  const emitted = JSON.parse((await page.locator('#result').textContent())!) as { perSecond: number };
  // From the first event the entrypoint wrote (the status events before it come from the runner's start).
  const arrivalS = (stats.lastReceivedAt - stats.firstOutputAt) / 1000;
  const renderS = (stats.lastRenderedAt - stats.firstOutputAt) / 1000;
  return {
    events,
    askedPerSecond: rate,
    emittedPerSecond: emitted.perSecond,
    arrivedPerSecond: Math.round(events / Math.max(arrivalS, 1e-3)),
    renderedPerSecond: Math.round(events / Math.max(renderS, 1e-3)),
    renderBehindArrivalMs: Math.round(stats.lastRenderedAt - stats.lastReceivedAt),
    frames: stats.frames,
    longestFlushMs: Math.round(stats.longestFlushMs),
    maxTimerLagMs: Math.round(probe.maxLagMs),
    maxFrameGapMs: Math.round(probe.maxFrameGapMs),
    tabSwitchMs,
  };
}

test('the live page renders about 1,000 events a second as they arrive, and a burst as fast as they come, staying responsive', async () => {
  const paced = await renderRun(3000, 1000);
  await screenshot(page, 'panel-security', 'status-1000-per-second');
  const burst = await renderRun(5000, 1_000_000);
  const report = { paced, burst };
  mkdirSync(join(ARTIFACTS, 'panel-security'), { recursive: true });
  writeFileSync(join(ARTIFACTS, 'panel-security', 'render-rate.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.log(`panel render rate: ${JSON.stringify(report)}`);

  // Rendering keeps up with the stream: the last event is on screen within a few frames of its arrival...
  expect(paced.renderedPerSecond).toBeGreaterThan(900);
  expect(paced.renderBehindArrivalMs).toBeLessThan(250);
  // ...and the page answers meanwhile (generous bounds: this machine also runs the cluster and the gateway).
  expect(paced.maxTimerLagMs).toBeLessThan(250);
  expect(burst.maxTimerLagMs).toBeLessThan(400);
  expect(paced.tabSwitchMs).toBeLessThan(250);
});
