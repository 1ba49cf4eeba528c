import type { Browser, Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { findChromium } from './findChromium';
import { startPageServer } from './page/server';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let browser: Browser;
let server: Awaited<ReturnType<typeof startPageServer>> | undefined;
/** What the page logged as warnings or errors: the client link warns on misconfiguration. */
let pageProblems: string[] = [];

beforeAll(async () => {
  const { executablePath } = await findChromium();
  // Our own flags, not @sparticuz/chromium's serverless set: that one turns off web security (CORS) and runs
  // a single process, which would change what the page can read and hide what a real browser refuses.
  browser = await chromium.launch({
    executablePath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

afterAll(async () => {
  await browser?.close();
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  // The lost responses log a network error; nothing may come from the library (a misconfiguration warning).
  expect(pageProblems.filter((text) => text.includes('trpc-idempotency'))).toEqual([]);
  pageProblems = [];
});

/** Opens the React form example (served on loopback) in a fresh browser context. */
const openForm = async ({ retry }: { retry: boolean }): Promise<Page> => {
  server = await startPageServer();
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'warning' || message.type() === 'error') pageProblems.push(message.text());
  });
  page.on('pageerror', (error) => pageProblems.push(`trpc-idempotency test: uncaught ${error.message}`));
  await page.goto(`${server.url}/${retry ? '' : '?retry=0'}`);
  await page.getByRole('button', { name: 'Place order' }).waitFor();
  return page;
};

/** The page's result lines, once there are `count` of them. */
const results = async (page: Page, count: number) => {
  const items = page.locator('li[data-outcome]');
  await expect.poll(() => items.count(), { timeout: 10_000 }).toBe(count);
  return items.evaluateAll((lis) =>
    lis.map((li) => ({
      outcome: li.getAttribute('data-outcome'),
      orderId: li.getAttribute('data-order-id'),
      key: li.getAttribute('data-key'),
      text: li.textContent,
    })),
  );
};

describe('React form in headless Chromium', () => {
  it('creates one order for a double click and shows the second as a replay', async () => {
    const page = await openForm({ retry: false });
    await page.getByRole('button', { name: 'Place order' }).dblclick();

    const lines = await results(page, 2);
    expect(lines.map((line) => line.outcome).sort()).toEqual(['created', 'replayed']);
    expect(new Set(lines.map((line) => line.orderId))).toEqual(new Set(['1']));
    expect(lines[0]?.key).toMatch(UUID_V4);
    expect(lines[1]?.key).toBe(lines[0]?.key);
    expect(lines.find((line) => line.outcome === 'replayed')?.text).toContain('replayed, not placed twice');
    // Both clicks reached the server; the key, not the button, kept it to one order.
    expect(server?.counts.createRequests).toBe(2);
    expect(server?.orders).toHaveLength(1);

    // Loopback over plain http is a secure context in Chromium, so the link's keys come from crypto.randomUUID.
    const root = page.locator('html');
    expect(await root.getAttribute('data-secure-context')).toBe('true');
    expect(await root.getAttribute('data-random-uuid')).toBe('true');
  });

  it('replays a lost response when the user presses again', async () => {
    const page = await openForm({ retry: false });
    server?.dropNextResponse('mid-body');
    await page.getByRole('button', { name: 'Place order' }).click();
    const [lost] = await results(page, 1);
    expect(lost?.outcome).toBe('failed');
    expect(server?.counts.dropped).toBe(1);
    expect(server?.orders).toHaveLength(1); // it ran; only the answer was lost

    await page.getByRole('button', { name: 'Place order' }).click();
    const [, again] = await results(page, 2);
    expect(again).toMatchObject({ outcome: 'replayed', orderId: '1', key: lost?.key });
    expect(server?.orders).toHaveLength(1);
  });

  it('replays a lost response on its own with retryLink', async () => {
    const page = await openForm({ retry: true });
    // Before the head: Chromium may re-send on its own, else retryLink does; either way with the same key.
    server?.dropNextResponse('before-head');
    await page.getByRole('button', { name: 'Place order' }).click();
    const [line] = await results(page, 1);
    expect(line).toMatchObject({ outcome: 'replayed', orderId: '1' });
    expect(server?.counts).toEqual({ createRequests: 2, dropped: 1 });
    expect(server?.orders).toHaveLength(1);

    // The intent is done: the next press is a new order with a new key.
    await page.getByRole('button', { name: 'Place order' }).click();
    const [, next] = await results(page, 2);
    expect(next).toMatchObject({ outcome: 'created', orderId: '2' });
    expect(next?.key).not.toBe(line?.key);
    expect(server?.orders).toHaveLength(2);
  });
});
