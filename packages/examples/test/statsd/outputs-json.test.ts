/**
 * `shardgram serve statsd --json-out` when the file's directory goes away under it: first
 * removed (the path cannot be opened: ENOENT), then a regular file put where the
 * directory was (the path cannot be created: ENOTDIR; a read-only directory would not
 * do, since the tests run as root and root ignores permissions), with a backlog of 3
 * flushes that overflows meanwhile; then the directory is made again. The flushes that
 * could not be written wait, the oldest past 3 are dropped and counted, and the count
 * is exactly the flushes made (numbered 1…N in the files) that no file holds.
 */
import dgram from 'node:dgram';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startServe, type Serving } from '@shardgram/test-kit/cli';
import { waitFor } from '@shardgram/test-kit/wait';
import { completeLines } from '../fixtures/json-lines.js';

let serving: Serving | undefined;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  await serving?.stop('SIGKILL');
  serving = undefined;
  for (const c of cleanups.splice(0)) c();
});

/** The flush numbers of the complete JSON lines in `text`. */
const numbers = (text: string): number[] => completeLines(text).map((l) => (JSON.parse(l) as { flush: number }).flush);

describe('statsd jsonOut: the directory removed, then a file in its place', () => {
  it('flushes wait while the file cannot be created, the oldest past jsonBacklog are dropped, and the drops are exactly the flushes no file holds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shardgram-statsd-json-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    const json = join(sub, 'flushes.jsonl');
    serving = await startServe(
      ['statsd', '--port', '0', '--workers', '1', '-o', 'flushInterval=100', '-o', `jsonOut=${json}`, '-o', 'jsonBacklog=3', '-o', 'outputRetryMax=200'],
      1,
    );
    const s = serving;
    const sock = dgram.createSocket('udp4');
    cleanups.push(() => sock.close());
    await new Promise<void>((r) => sock.send('json.hits:1|c', s.port, '127.0.0.1', () => r()));
    expect(await waitFor(() => numbers(readFileSync(json, 'utf8')).length >= 2, 10_000, 20)).toBe(true);

    // The old file, kept open: what is written to it after its removal can still be read.
    const oldFd = openSync(json, 'r');
    cleanups.push(() => closeSync(oldFd));
    rmSync(sub, { recursive: true });
    expect(await waitFor(() => /jsonOut .*flushes\.jsonl was removed and cannot be created again: .*ENOENT/.test(s.stderr()), 10_000, 20)).toBe(true);
    writeFileSync(sub, 'not a directory\n');
    expect(await waitFor(() => /still failing, now: .*ENOTDIR/.test(s.stderr()), 10_000, 20)).toBe(true);
    expect(await waitFor(() => /jsonOut .*: backlog full \(3 flushes\)/.test(s.stderr()), 10_000, 20)).toBe(true);
    expect(s.stderr()).toMatch(/backlog full \(3 flushes\): dropping the oldest; every flush dropped is counted/);
    unlinkSync(sub);
    mkdirSync(sub);
    expect(await waitFor(() => s.stderr().includes('delivering again'), 10_000, 20)).toBe(true);

    const r = await s.stop('SIGTERM');
    serving = undefined;
    expect(r.code, r.stdout).toBe(0);
    const old = numbers(readFileSync(oldFd, 'utf8'));
    const now = numbers(readFileSync(json, 'utf8'));
    const n = now.at(-1)!; // the final flush
    expect((JSON.parse(readFileSync(json, 'utf8').trim().split('\n').at(-1)!) as { final: boolean }).final).toBe(true);
    // The old file: 1…m delivered, then the one written after the removal (found removed, kept for a retry).
    expect(old).toEqual(Array.from({ length: old.length }, (_, i) => i + 1));
    // The new file: one run, in order, no gap (the kept flushes, then the later ones).
    expect(now).toEqual(Array.from({ length: now.length }, (_, i) => now[0]! + i));
    const held = new Set([...old.slice(0, -1), ...now]);
    const m = /jsonOut \S+: (\d+) of (\d+) flushes delivered, (\d+) dropped \(backlog full\), (\d+) dropped at stop/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    const [delivered, accepted, dropped, atStop] = m!.slice(1).map(Number);
    expect(accepted).toBe(n);
    expect(atStop).toBe(0);
    expect(delivered).toBe(held.size);
    expect(dropped).toBe(n - held.size);
    expect(dropped).toBeGreaterThan(0);
  }, 30_000);
});
