/** @module A real browser for page tests in one line: Debian's chromium-headless-shell driven by playwright-core (no browser download). */
import { accessSync, constants, mkdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Where tests leave screenshots (gitignored). */
export const ARTIFACTS = join(__dirname, '..', '..', 'test-artifacts');

const NAMES = ['chromium-headless-shell', 'chromium', 'chromium-browser', 'google-chrome'];

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The browser to drive: NODUS_CHROMIUM, else /usr/bin/chromium-headless-shell, else the first Chromium on PATH. */
export function chromiumPath(): string {
  const given = process.env.NODUS_CHROMIUM;
  if (given) return given;
  if (executable('/usr/bin/chromium-headless-shell')) return '/usr/bin/chromium-headless-shell';
  for (const dir of (process.env.PATH ?? '').split(delimiter)) for (const name of NAMES) if (dir && executable(join(dir, name))) return join(dir, name);
  throw new Error("No Chromium found for the browser tests. Install Debian's: sudo apt-get install -y chromium-headless-shell (or set NODUS_CHROMIUM to a Chromium binary).");
}

/** Starts headless Chromium; close it with `browser.close()`. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath(), headless: true });
}

/**
 * A browser for a whole test file: launched in beforeAll, closed in afterAll. The returned object is filled in when
 * beforeAll has run.
 *
 * @example
 * const b = useBrowser();
 * test('...', async () => { const page = await b.browser.newPage(); ... });
 */
export function useBrowser(): { browser: Browser } {
  const holder = {} as { browser: Browser };
  beforeAll(async () => {
    holder.browser = await launchBrowser();
  });
  afterAll(async () => {
    await holder.browser?.close();
  });
  return holder;
}

/** What went wrong in a page while a test used it: script errors, console errors (CSP violations among them), 5xx answers, dialogs. */
export interface PageWatch {
  errors: string[];
  dialogs: string[];
}

/** Records a page's errors and dialogs (dismissing any dialog, so that none blocks the test). */
export function watchPage(page: Page): PageWatch {
  const w: PageWatch = { errors: [], dialogs: [] };
  page.on('pageerror', (err) => w.errors.push(err.message));
  page.on('console', (m) => {
    // A 4xx page (a refused login, a form that did not pass) is an answer the test checks, not a fault of the page.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) w.errors.push(m.text());
  });
  page.on('response', (r) => {
    if (r.status() >= 500) w.errors.push(`${r.status()} from ${r.request().method()} ${r.url()}`);
  });
  page.on('dialog', (d) => {
    w.dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss().catch(() => undefined);
  });
  return w;
}

/** Fails the test when the page had an error (a script error, a CSP violation, a 5xx) or a dialog; clears the record. */
export function expectNoPageErrors(w: PageWatch): void {
  const { errors, dialogs } = w;
  w.errors = [];
  w.dialogs = [];
  expect(errors).toEqual([]);
  expect(dialogs).toEqual([]);
}

/** Saves a full-page screenshot as test-artifacts/<folder>/<name>.png; returns its path. */
export async function screenshot(page: Page, folder: string, name: string): Promise<string> {
  const dir = join(ARTIFACTS, folder);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
