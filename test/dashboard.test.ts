import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type dgram from 'node:dgram';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Supervisor, startStatsServer, type StatsReport, type StatsServer } from '@shardgram/udp-core';
import { closeAll, openClients } from '@shardgram/test-kit/udp';
import { waitFor } from '@shardgram/test-kit/wait';

const chromium = spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).stdout.trim();
if (!chromium) console.log('chromium is not installed here (.ci/run installs it): the browser test of the live page is skipped');

/** A bounded, paced load: `sources` sockets, one datagram each per tick, until stopped or `max` sent. */
function paced(clients: dgram.Socket[], port: number, max: number): { stop(): void; sent(): number } {
  let sent = 0;
  const timer = setInterval(() => {
    clients.forEach((c, i) => {
      // Source 0 sends three times as often: a visible top sender.
      for (let k = 0; k < (i === 0 ? 3 : 1) && sent < max; k++, sent++) c.send('load', port, '127.0.0.1');
    });
    if (sent >= max) clearInterval(timer);
  }, 10);
  return { stop: () => clearInterval(timer), sent: () => sent };
}

describe.skipIf(!chromium)('the live page in headless Chromium', () => {
  let sup: Supervisor;
  let http: StatsServer;
  let browser: Browser;
  let profile: string;
  let clients: dgram.Socket[];

  beforeAll(async () => {
    sup = new Supervisor({ app: 'discard', port: 0, workers: 3, snapshotIntervalMs: 100, log: () => {} });
    await sup.start();
    http = await startStatsServer(sup, 0);
    clients = await openClients(24);
    profile = mkdtempSync(join(tmpdir(), 'shardgram-chromium-'));
    browser = await puppeteer.launch({
      executablePath: chromium,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        `--user-data-dir=${profile}`,
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    if (clients) closeAll(clients);
    await http?.close();
    await sup?.stop();
  });

  const readStats = async (): Promise<StatsReport> => (await (await fetch(`${http.url}/stats`)).json()) as StatsReport;
  const seq = (page: Page): Promise<number> => page.$eval('#updated', (e) => Number((e as HTMLElement).dataset.seq));

  it('shows every worker with its /stats share, updates, and logs no errors', async () => {
    const load = paced(clients, sup.port, 30_000);
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('console', (m) => void (m.type() === 'error' && problems.push(`console: ${m.text()}`)));
    page.on('pageerror', (e) => void problems.push(`page: ${e instanceof Error ? e.message : String(e)}`));
    page.on('requestfailed', (r) => void problems.push(`request: ${r.url()} ${r.failure()?.errorText}`));
    // What Chromium really sends for the page's fetch (the Origin rule must let it through).
    const cdp = await page.createCDPSession();
    await cdp.send('Network.enable');
    const urls = new Map<string, string>();
    const sentOrigins = new Set<string>();
    cdp.on('Network.requestWillBeSent', (e) => void urls.set(e.requestId, e.request.url));
    cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
      if (urls.get(e.requestId)?.endsWith('/stats')) sentOrigins.add(String(e.headers.origin ?? e.headers.Origin ?? '(none)'));
    });
    try {
      const res = await page.goto(`${http.url}/`);
      expect(res?.status()).toBe(200);
      expect(res?.headers()['content-security-policy']).toContain("connect-src 'self'");
      expect(await page.waitForFunction(() => Number(document.getElementById('updated')!.dataset.seq) >= 2, { timeout: 15_000 })).toBeTruthy();

      // Every worker's pid, as a row and as visible text.
      const pids = sup.workerPids();
      expect(await page.$$eval('.worker[data-pid]', (rows) => rows.map((r) => Number((r as HTMLElement).dataset.pid)))).toEqual(pids);
      const text = await page.$eval('body', (b) => (b as HTMLElement).textContent ?? '');
      for (const pid of pids) expect(text).toContain(String(pid));
      expect(text).toContain('discard on 127.0.0.1:');

      // The shares shown are /stats's: between a reading before the page's next update and one after.
      const before = await readStats();
      const n = await seq(page);
      await page.waitForFunction((k) => Number(document.getElementById('updated')!.dataset.seq) > k, { timeout: 10_000 }, n);
      const shown = await page.$$eval('.worker[data-pid]', (rows) =>
        rows.map((r) => ({ pid: Number((r as HTMLElement).dataset.pid), share: r.querySelector('.share')!.textContent! })),
      );
      const after = await readStats();
      for (const s of shown) {
        const w1 = before.workers.find((w) => w.pid === s.pid)!;
        const w2 = after.workers.find((w) => w.pid === s.pid)!;
        expect(s.share).toMatch(/^\d+\.\d%$/);
        const value = Number(s.share.slice(0, -1)) / 100;
        // Counts only grow: the share at the page's reading lies within these, to the 0.1% shown.
        const lo = w1.datagrams / Math.max(1, after.total.datagrams - after.retired.datagrams);
        const hi = w2.datagrams / Math.max(1, before.total.datagrams - before.retired.datagrams);
        expect(value).toBeGreaterThanOrEqual(lo - 0.0005);
        expect(value).toBeLessThanOrEqual(hi + 0.0005);
      }
      expect(after.total.datagrams).toBeGreaterThan(0);

      // It updates: the total shown grows under the load.
      const total = (): Promise<string> => page.$eval('.kpi .sub', (e) => e.textContent!);
      const first = await total();
      expect(await waitFor(async () => (await total()) !== first, 10_000, 100)).toBe(true);
      expect(await page.$eval('#live', (e) => e.classList.contains('stale'))).toBe(false);
      // The fairness chart has drawn a line.
      expect(await page.$$eval('#chart path', (p) => p.length)).toBeGreaterThan(0);

      // Usable on a phone: nothing wider than the screen, every pid still there.
      await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 2, isMobile: true });
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
      // Dark mode follows the system.
      const luminance = (): Promise<number> =>
        page.evaluate(() => {
          const m = /(\d+), (\d+), (\d+)/.exec(getComputedStyle(document.body).backgroundColor)!;
          return (0.2126 * Number(m[1]) + 0.7152 * Number(m[2]) + 0.0722 * Number(m[3])) / 255;
        });
      expect(await luminance()).toBeGreaterThan(0.8);
      await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'dark' }]);
      expect(await luminance()).toBeLessThan(0.2);

      expect(problems).toEqual([]);
      console.log(`Origin header on the page's /stats requests, as Chromium sent them: ${[...sentOrigins].join(', ') || '(not captured)'}`);
    } finally {
      load.stop();
      await page.close();
    }
  });
});

describe('the stats port and web origins', () => {
  it('serves the page, and lets only its own origin read', async () => {
    const sup = { stats: (): StatsReport => ({ workers: [] }) as unknown as StatsReport };
    const http = await startStatsServer(sup, 0);
    try {
      const page = await fetch(`${http.url}/`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(await page.text()).toMatch(/^<!doctype html>[\s\S]*fetch\('stats'/);
      const own = `http://127.0.0.1:${http.port}`;
      expect((await fetch(`${http.url}/stats`, { headers: { origin: own } })).status).toBe(200);
      expect((await fetch(`${http.url}/stats`, { headers: { origin: `http://127.0.0.1:${http.port + 1}` } })).status).toBe(403);
      expect((await fetch(`${http.url}/stats`, { headers: { origin: 'http://example.test' } })).status).toBe(403);
      expect((await fetch(`${http.url}/stats`, { headers: { origin: 'null' } })).status).toBe(403);
      // Without the port, Origin names port 80: not this server.
      expect((await fetch(`${http.url}/stats`, { headers: { origin: 'http://127.0.0.1' } })).status).toBe(403);
      // Its own origin may read, nothing else.
      expect((await fetch(`${http.url}/stats`, { method: 'POST', headers: { origin: own } })).status).toBe(403);
      expect((await fetch(`${http.url}/stats`, { method: 'POST' })).status).toBe(405);
      // DNS rebinding: a foreign Host is refused even with a matching Origin.
      const status = await new Promise<number | undefined>((resolve, reject) => {
        request(`${http.url}/stats`, { headers: { host: 'evil.test', origin: 'http://evil.test' } }, (res) => {
          res.resume();
          resolve(res.statusCode);
        })
          .on('error', reject)
          .end();
      });
      expect(status).toBe(403);
    } finally {
      await http.close();
    }
  });
});
