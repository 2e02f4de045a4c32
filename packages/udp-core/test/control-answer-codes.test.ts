/**
 * A control socket that answers something no shardgram service would (a line too long,
 * not JSON, an offer without the sockets it announces) is a service that cannot be
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

  it('an offer announcing sockets it does not pass: ERR_SHARDGRAM_UNREACHABLE', async () => {
    const path = await fake(`${JSON.stringify({ ok: true, op: 'takeover-offer', nfds: 2 })}\n`);
    const e = thrownSync(() => requestTakeover(path));
    expect(e.code).toBe('ERR_SHARDGRAM_UNREACHABLE');
    expect(e.message).toBe('--takeover: expected 2 sockets from the running service, received 0');
  });
});
