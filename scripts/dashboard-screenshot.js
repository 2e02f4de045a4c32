#!/usr/bin/env node
// Takes docs/dashboard.png: a 4-worker service under a bounded loopback load in which
// one source port sends about half of the datagrams (so the page shows a top sender
// and the imbalance warning), photographed in headless Chromium after --seconds.
//
//   npm run build && node scripts/dashboard-screenshot.js [--seconds 45] [--dark] [--width 1280] [--out docs/dashboard.png]
import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import puppeteer from 'puppeteer-core';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const { Supervisor, startStatsServer } = await import(join(ROOT, 'packages', 'udp-core', 'dist', 'index.js'));
const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '45' },
    width: { type: 'string', default: '1280' },
    dark: { type: 'boolean', default: false },
    out: { type: 'string', default: join(ROOT, 'docs', 'dashboard.png') },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
const seconds = Math.min(300, Math.max(5, Number(args.seconds)));

const sup = new Supervisor({ app: 'discard', port: 0, workers: 4, engine: 'native', log: () => {} });
await sup.start();
const http = await startStatsServer(sup, 0);
const sources = await Promise.all(
  Array.from(
    { length: 41 },
    () =>
      new Promise((resolve) => {
        const s = dgram.createSocket('udp4');
        s.bind(0, '127.0.0.1', () => resolve(s));
      }),
  ),
);
// About 8,000 datagrams/s for `seconds`: source 0 sends 60 per tick (60%), the others one each.
let ticks = 0;
const maxTicks = seconds * 100 + 1000;
const timer = setInterval(() => {
  if (++ticks > maxTicks) return clearInterval(timer);
  sources.forEach((s, i) => {
    for (let k = 0; k < (i === 0 ? 60 : 1); k++) s.send(`metric.${i}:1|c`, sup.port, '127.0.0.1');
  });
}, 10);

const profile = mkdtempSync(join(tmpdir(), 'shardgram-chromium-'));
const browser = await puppeteer.launch({
  executablePath: args.chromium,
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
try {
  const page = await browser.newPage();
  await page.setViewport({ width: Number(args.width), height: 900, deviceScaleFactor: 1 });
  if (args.dark) await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'dark' }]);
  await page.goto(`${http.url}/`);
  await page.waitForFunction((n) => Number(document.getElementById('updated').dataset.seq) >= n, { timeout: (seconds + 30) * 1000 }, seconds);
  await page.screenshot({ path: args.out, fullPage: true });
  process.stdout.write(`wrote ${args.out}\n`);
} finally {
  clearInterval(timer);
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
  for (const s of sources) s.close();
  await http.close();
  await sup.stop();
}
