/**
 * Browser tests drive Debian's Chromium (`apt-get install chromium`, done by
 * scripts/test-deps.sh) through playwright-core: no browser download. The front end must
 * have been built into dist/web (`npm run build`, which `npm test` runs first).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.KINDRED_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'];
const WEB_INDEX = fileURLToPath(new URL('../../dist/web/index.html', import.meta.url));

export async function launchBrowser(t: { teardown(fn: () => unknown): void }): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run scripts/test-deps.sh (apt-get install chromium) or set KINDRED_CHROMIUM`);
  if (!existsSync(WEB_INDEX)) throw new Error('the web front end is not built (dist/web/index.html): run npm run build');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
  t.teardown(() => browser.close());
  return browser;
}

/** A fresh browser profile with its page; uncaught script errors and console errors are collected for the test to check. */
export async function openPage(browser: Browser, base: string, opts: { phone?: boolean } = {}): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  const context = await browser.newContext({
    baseURL: base,
    viewport: opts.phone ? { width: 390, height: 844 } : { width: 1200, height: 860 },
    ...(opts.phone ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}),
    acceptDownloads: true,
  });
  // generous: CI runs two test files at once on two cores; a passing step takes far less
  context.setDefaultTimeout(30_000);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    // a refused request is the app's to show or handle (the tests check what it shows); anything else logged as an error is a bug
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) errors.push(`console: ${msg.text()}`);
  });
  return { context, page, errors };
}
