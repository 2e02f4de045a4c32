/**
 * The records of one read batch go out with one write(2) at the engine's `batchEnd`
 * (sink.ts): whole lines, in order; nothing before the batch ends; and when the batch's
 * write fails, every record is still either a whole line counted written or counted
 * failed (a torn batch's whole lines are written, the cut one is the torn one, the rest
 * are written one by one).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EventEmitter } from 'node:events';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AppContext, AppHooks, ShardSocket } from '@shardgram/udp-core';
// The app from its source, so that it writes through the same AppendWriter the spies replace (the package resolves to dist/).
import app from '../../src/syslog.js';
import { FileSink } from '../../src/syslog/sink.js';
import { AppendWriter, WriteFailure } from '../../src/syslog/writer.js';
import { readRecords, tempDir } from './helpers.js';

let cleanup: (() => void) | undefined;
afterEach(() => {
  vi.restoreAllMocks();
  cleanup?.();
  cleanup = undefined;
});

const ctx = (options: Record<string, string>, sent: unknown[] = []): AppContext => ({
  index: 0,
  workers: 1,
  pid: 4242,
  options,
  log: () => {},
  send: (m) => void sent.push(m),
  onSupervisorMessage: () => {},
  sampledLog: () => ({ note: () => {} }) as unknown as ReturnType<AppContext['sampledLog']>,
});

describe('FileSink', () => {
  it('writes the records added since the last flush with one write, as whole lines in order', () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const path = join(t.dir, 'b.jsonl');
    const writes = vi.spyOn(AppendWriter.prototype, 'write');
    const sink = new FileSink(path, 0, ctx({}));
    sink.add('{"n":1}\n');
    sink.add('{"n":2,"s":"é"}\n');
    sink.add('{"n":3}\n');
    expect(readFileSync(path, 'utf8')).toBe(''); // nothing before the flush
    expect(sink.flush()).toEqual({ written: 3, bytes: Buffer.byteLength('{"n":1}\n{"n":2,"s":"é"}\n{"n":3}\n'), failed: [] });
    expect(writes).toHaveBeenCalledTimes(1);
    expect(sink.flush()).toMatchObject({ written: 0, failed: [] }); // nothing pending: no write
    expect(writes).toHaveBeenCalledTimes(1);
    sink.close();
    expect(readFileSync(path, 'utf8')).toBe('{"n":1}\n{"n":2,"s":"é"}\n{"n":3}\n');
  });

  it('a torn batch: its whole lines count as written, the cut record as torn, the rest is written one by one', () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const path = join(t.dir, 't.jsonl');
    const real = AppendWriter.prototype.write;
    let calls = 0;
    // The first write (the batch) leaves the first line and 3 bytes of the second, then fails as torn.
    vi.spyOn(AppendWriter.prototype, 'write').mockImplementation(function (this: AppendWriter, data: Buffer) {
      if (calls++ > 0) return real.call(this, data);
      appendFileSync(path, data.subarray(0, 8 + 3));
      throw new WriteFailure('short write (test)', 'ENOSPC', true, 8 + 3);
    });
    const sink = new FileSink(path, 0, ctx({}));
    for (const n of [1, 2, 3, 4]) sink.add(`{"n":${n}}\n`);
    const o = sink.flush();
    expect(o.written).toBe(3); // line 1 (left whole by the batch), lines 3 and 4 (one by one)
    expect(o.failed).toHaveLength(1);
    expect(o.failed[0]!.records).toBe(1);
    expect((o.failed[0]!.error as WriteFailure).torn).toBe(true);
    expect(calls).toBe(3); // the batch, then records 3 and 4
    sink.close();
    // The cut record is the one broken line (the next write glued to it), as with one record per write.
    expect(readFileSync(path, 'utf8')).toBe('{"n":1}\n{"n{"n":3}\n{"n":4}\n');
  });

  it('a batch whose write fails without leaving anything is written record by record', () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const path = join(t.dir, 'f.jsonl');
    const real = AppendWriter.prototype.write;
    let calls = 0;
    vi.spyOn(AppendWriter.prototype, 'write').mockImplementation(function (this: AppendWriter, data: Buffer) {
      calls++;
      // The batch and the second record fail (disk full, rolled back); the others go in.
      if (calls === 1 || data.toString() === '{"n":2}\n') throw new WriteFailure('short write (test)', 'ENOSPC');
      return real.call(this, data);
    });
    const sink = new FileSink(path, 0, ctx({}));
    for (const n of [1, 2, 3]) sink.add(`{"n":${n}}\n`);
    const o = sink.flush();
    expect(o.written).toBe(2);
    expect(o.failed.map((f) => f.records)).toEqual([1]);
    sink.close();
    expect(readFileSync(path, 'utf8')).toBe('{"n":1}\n{"n":3}\n');
  });
});

describe('the app: one write per batch', () => {
  it('records reach the file at batchEnd, one write for the batch, counted written', async () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const path = join(t.dir, 'a.jsonl');
    const writes = vi.spyOn(AppendWriter.prototype, 'write');
    const sent: unknown[] = [];
    const socket = new EventEmitter() as unknown as ShardSocket;
    const hooks = (await app(socket, ctx({ out: path }, sent))) as AppHooks;
    const rinfo = { address: '127.0.0.1', family: 'IPv4' as const, port: 514, size: 0 };
    for (let i = 0; i < 5; i++) socket.emit('message', Buffer.from(`<13>1 - h a p m - batch-${i}`), rinfo);
    expect(readFileSync(path, 'utf8')).toBe('');
    socket.emit('batchEnd');
    expect(writes).toHaveBeenCalledTimes(1);
    expect(readRecords(path).map((r) => r.message)).toEqual([0, 1, 2, 3, 4].map((i) => `batch-${i}`));
    socket.emit('message', Buffer.from('<13>1 - h a p m - alone'), rinfo);
    await hooks.close?.(); // what a batch left pending is written at close
    expect(
      readRecords(path)
        .map((r) => r.message)
        .at(-1),
    ).toBe('alone');
    const final = sent.filter((m) => (m as { final?: boolean }).final).at(-1) as { counters: { written: number; messages: number } };
    expect(final.counters).toMatchObject({ written: 6, messages: 6 });
  });
});
