/**
 * The output file when the system fails under `shardgram serve syslog`: a full disk
 * (a 1 MiB tmpfs) and the output directory removed while the service runs. Every
 * record is either a whole line in the file or counted as a write error; the failure
 * is said once in the log, not at every check.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServe, type Serving } from '@shardgram/test-kit/cli';
import { closeAll, openClients, send } from '@shardgram/test-kit/udp';
import { waitFor } from '@shardgram/test-kit/wait';
import { readRecords, tempDir } from './helpers.js';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.log('syslog output-failures: the full-disk test needs root to mount a 1 MiB tmpfs; skipped');

let serving: Serving | undefined;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  await serving?.stop('SIGTERM');
  serving = undefined;
  for (const c of cleanups.splice(0).reverse()) c();
});

async function serveSyslog(out: string): Promise<Serving> {
  serving = await startServe(['syslog', '--port', '0', '--workers', '2', '--stats-port', '0', '--app-option', `out=${out}`], 2);
  return serving;
}

const sumOf = (text: string, name: string): number =>
  [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);

interface Counts {
  messages: number;
  written: number;
  writeErrors: number;
}

async function counts(s: Serving): Promise<Counts> {
  const text = await (await fetch(`${s.stats!}/metrics`)).text();
  return {
    messages: sumOf(text, 'shardgram_syslog_messages_total'),
    written: sumOf(text, 'shardgram_syslog_written_total'),
    writeErrors: sumOf(text, 'shardgram_syslog_write_errors_total'),
  };
}

/** Waits until the workers have reported `n` messages in all (their status comes every 500 ms). */
async function countsWhen(s: Serving, n: number): Promise<Counts> {
  let c: Counts = { messages: 0, written: 0, writeErrors: 0 };
  const ok = await waitFor(async () => (c = await counts(s)).messages === n && c.written + c.writeErrors === n, 10_000, 50);
  if (!ok) throw new Error(`the workers did not report ${n} messages: ${JSON.stringify(c)}`);
  return c;
}

describe('syslog output: a full disk', () => {
  it.skipIf(!isRoot)('a record cut by ENOSPC is rolled back and counted; once space returns, the next records are whole lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shardgram-syslog-full-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
    cleanups.push(() => execFileSync('umount', [dir]));
    const filler = join(dir, 'filler');
    writeFileSync(filler, Buffer.alloc(128 * 1024));
    const out = join(dir, 'out.jsonl');
    const s = await serveSyslog(out);
    const clients = await openClients(4);
    cleanups.push(() => closeAll(clients));
    // ~2.3 KB records: the one that meets the end of the space is cut by a short write (pages are 4 KiB).
    const record = (i: number): string => `<13>1 - h app - - - R${i} ${'x'.repeat(2000)}`;
    let sent = 0;
    const sendBatch = async (n: number): Promise<Counts> => {
      for (let i = 0; i < n; i++, sent++) await send(clients[sent % clients.length]!, record(sent), s.port);
      return countsWhen(s, sent);
    };
    let c: Counts = { messages: 0, written: 0, writeErrors: 0 };
    // 1 MiB holds about 450 of them: fill it, bounded.
    while (c.writeErrors < 5 && sent < 1000) c = await sendBatch(25);
    expect(c.writeErrors).toBeGreaterThanOrEqual(5);
    const writtenWhenFull = c.written;
    unlinkSync(filler); // space returns
    c = await sendBatch(20);
    expect(c.written).toBe(writtenWhenFull + 20);
    const r = await s.stop('SIGTERM');
    serving = undefined;
    expect(r.code).toBe(0);
    // Every line parses (readRecords throws on a broken one), and the file holds exactly what was counted as written.
    const records = readRecords(out);
    expect(records).toHaveLength(c.written);
    expect(c.written + c.writeErrors).toBe(sent);
    expect(new Set(records.map((x) => x.message!.split(' ')[0])).size).toBe(c.written);
    expect(readFileSync(out, 'utf8').endsWith('\n')).toBe(true);
    // The record that met the end of the space was cut, then taken out of the file again.
    expect(r.stdout).toMatch(/short write: \d+ of \d+ bytes \(disk full\?\); the partial record was removed from the file/);
  });
});

describe('syslog output: the directory removed while the service runs', () => {
  it('records are counted as write errors (not as written), the failure is said once, and the file is reopened when the directory is back', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const sub = join(t.dir, 'logs');
    mkdirSync(sub);
    const out = join(sub, 'syslog.jsonl');
    const s = await serveSyslog(out);
    const clients = await openClients(8);
    cleanups.push(() => closeAll(clients));
    let sent = 0;
    const sendBatch = async (marker: string, n: number): Promise<Counts> => {
      for (let i = 0; i < n; i++, sent++) await send(clients[sent % clients.length]!, `<13>1 - h app - - - ${marker}-${i} hello`, s.port);
      return countsWhen(s, sent);
    };
    let c = await sendBatch('before', 100);
    expect(c).toEqual({ messages: 100, written: 100, writeErrors: 0 });

    rmSync(sub, { recursive: true });
    c = await sendBatch('gone', 200);
    // Every record sent while the directory is gone is a write error: none is counted as written into the removed file.
    expect(c).toEqual({ messages: 300, written: 100, writeErrors: 200 });
    expect(await waitFor(() => /from outside and cannot be created again/.test(s.stderr()), 5_000)).toBe(true);
    // Said once: the checks (every 250 ms) went on through the worker reports (every 500 ms) awaited above.
    expect(s.stderr().match(/from outside and cannot be created again/g)).toHaveLength(1);
    // Each worker (two; the hash of 8 source ports may give all to one) says it once too.
    const workerLines = s.stderr().match(/write error #\d+: .* was removed and cannot be created again/g) ?? [];
    expect(workerLines.length).toBeGreaterThanOrEqual(1);
    expect(workerLines.length).toBeLessThanOrEqual(2);
    expect(s.stderr()).not.toMatch(/rotation check of .* failed/);

    mkdirSync(sub);
    expect(await waitFor(() => /created again after [\d.]+ s; workers reopen it/.test(s.stderr()), 5_000)).toBe(true);
    c = await sendBatch('back', 50);
    expect(c).toEqual({ messages: 350, written: 150, writeErrors: 200 });
    const r = await s.stop('SIGTERM');
    serving = undefined;
    expect(r.code).toBe(0);
    const records = readRecords(out);
    expect(records.map((x) => x.message!.split(' ')[0]!.split('-')[0]).sort()).toEqual(Array(50).fill('back'));
  });
});
