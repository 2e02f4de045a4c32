/**
 * A control socket that answers something no shardgram service would (a line too long,
 * not JSON, an offer with a field missing or without the sockets it announces) is a service that cannot be
 * used: ERR_SHARDGRAM_UNREACHABLE, as docs/errors.md says, never a kernel error
 * (ERR_SHARDGRAM_SYSCALL: no call failed) nor a plain Error without a code.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { controlRequest } from '../src/control/client.js';
import { MAX_REQUEST_BYTES } from '../src/control/protocol.js';
import { requestTakeover } from '../src/control/takeover/new-side.js';
import { ShardgramError } from '../src/errors.js';

/**
 * A unix stream server in its own process (requestTakeover blocks this one) that
 * answers every connection's first line with argv[2] (JSON: text, times) and holds it open.
 */
const FAKE = `
import net from 'node:net';
const { text, times } = JSON.parse(process.argv[2]);
const answer = text.repeat(times);
net.createServer((c) => {
  c.on('error', () => undefined);
  c.once('data', () => c.write(answer));
}).listen(process.argv[1], () => console.log('listening'));
`;

const started: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const p of started.splice(0)) if (p.exitCode === null && p.pid) process.kill(p.pid, 'SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Starts the fake on a socket of a fresh directory; resolves with its path once it listens. */
async function fake(text: string, times = 1): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-answer-'));
  dirs.push(dir);
  const path = join(dir, 'c.sock');
  const child = spawn(process.execPath, ['--input-type=module', '-e', FAKE, path, JSON.stringify({ text, times })], { stdio: ['ignore', 'pipe', 'inherit'] });
  started.push(child);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the fake server did not listen; stdout: ${out}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return path;
}

function thrownSync(fn: () => unknown): ShardgramError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ShardgramError);
    return err as ShardgramError;
  }
  throw new Error('not refused');
}

describe('controlRequest, given an answer no service would give', () => {
  it('an answer longer than it takes: ERR_SHARDGRAM_UNREACHABLE', async () => {
    const path = await fake('x', 64 * MAX_REQUEST_BYTES + 1);
    const err = await controlRequest(path, { op: 'status' }, 20_000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ShardgramError);
    expect((err as ShardgramError).code).toBe('ERR_SHARDGRAM_UNREACHABLE');
    expect((err as ShardgramError).message).toMatch(/answer to "status" is longer than/);
  });

  it('an answer that is not JSON: ERR_SHARDGRAM_UNREACHABLE, not a SyntaxError', async () => {
    const path = await fake('hello there\n');
    const err = await controlRequest(path, { op: 'status' }, 20_000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ShardgramError);
    expect((err as ShardgramError).code).toBe('ERR_SHARDGRAM_UNREACHABLE');
  });
});

describe('the new side of a takeover, given an answer no service would give', () => {
  it('an answer that is not JSON: ERR_SHARDGRAM_UNREACHABLE', async () => {
    const path = await fake('hello there\n');
    const e = thrownSync(() => requestTakeover(path));
    expect(e.code).toBe('ERR_SHARDGRAM_UNREACHABLE');
    expect(e.message).toMatch(/^--takeover: no usable answer from the running service/);
  });

  /** An offer as the old side sends it (old-side.ts), for a group of two sockets. */
  const OFFER = {
    ok: true,
    op: 'takeover-offer',
    nfds: 2,
    address: '127.0.0.1',
    port: 9999,
    family: 'udp4',
    workers: 2,
    policy: { name: 'hash' },
    app: 'echo',
    pid: 4242,
    dropsBefore: [0, 0],
    rcvbufs: [212992, 212992],
    braced: true,
  };

  it('an offer announcing sockets it does not pass: ERR_SHARDGRAM_UNREACHABLE', async () => {
    const path = await fake(`${JSON.stringify(OFFER)}\n`);
    const e = thrownSync(() => requestTakeover(path));
    expect(e.code).toBe('ERR_SHARDGRAM_UNREACHABLE');
    expect(e.message).toBe('--takeover: expected 2 sockets from the running service, received 0');
  });

  it('an offer with a field missing or of the wrong kind: ERR_SHARDGRAM_UNREACHABLE naming the field, before any socket is taken', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ ...OFFER, address: undefined }, "the offer's address is not a string"],
      [{ ...OFFER, family: 'udp5' }, "the offer's family is neither udp4 nor udp6"],
      [{ ...OFFER, workers: 0 }, "the offer's workers is not a whole number of workers"],
      [{ ...OFFER, policy: {} }, "the offer's policy has no name"],
      [{ ...OFFER, dropsBefore: [0] }, "the offer's dropsBefore is not one count per socket"],
      [{ ...OFFER, op: 'takeover-done' }, 'not an offer (op "takeover-done")'],
    ];
    for (const [offer, why] of cases) {
      const path = await fake(`${JSON.stringify(offer)}\n`);
      const e = thrownSync(() => requestTakeover(path));
      expect(e.code).toBe('ERR_SHARDGRAM_UNREACHABLE');
      expect(e.message).toBe(`--takeover: no usable answer from the running service: ${why}`);
    }
  });
});
