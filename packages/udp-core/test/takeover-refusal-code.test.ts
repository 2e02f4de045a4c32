/**
 * The new side of a takeover keeps the code the running service refused it with: a
 * control socket with every slot taken answers ERR_SHARDGRAM_BUSY, and `--takeover`
 * says so (not ERR_SHARDGRAM_UNREACHABLE, which would send the owner looking for a
 * service that is there).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { requestTakeover } from '../src/control/takeover/new-side.js';
import { MAX_CONNECTIONS } from '../src/control/server.js';
// The error class of the same copy as new-side.ts (not exported), for instanceof.
import { ShardgramError } from '../src/errors.js';

const serverModule = new URL('../dist/control/server.js', import.meta.url).href;

/** A control server in its own process (requestTakeover blocks this one) whose reloads wait until its stdin closes. */
const SERVER = `
import { startControlServer } from ${JSON.stringify(serverModule)};
let under = 0;
const release = new Promise((r) => process.stdin.on('close', r).resume());
await startControlServer({
  status: () => ({}),
  reload: async () => {
    if (++under === ${MAX_CONNECTIONS}) console.log('all under way');
    await release;
    return {};
  },
}, process.argv[1], () => undefined);
console.log('listening');
`;

const started: ChildProcess[] = [];
const dirs: string[] = [];
const conns: net.Socket[] = [];
afterEach(() => {
  for (const c of conns.splice(0)) c.destroy();
  for (const p of started.splice(0)) if (p.exitCode === null && p.pid) process.kill(p.pid, 'SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function saw(child: ChildProcess, line: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no "${line}" within ${timeoutMs} ms; stdout: ${out}`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(line)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

describe('a takeover refused for a reason other than state', () => {
  it('keeps the code the running service answered (ERR_SHARDGRAM_BUSY) and its words', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sg-refusal-'));
    dirs.push(dir);
    const path = join(dir, 'c.sock');
    const child = spawn(process.execPath, ['--input-type=module', '-e', SERVER, path], { stdio: ['pipe', 'pipe', 'inherit'] });
    started.push(child);
    await saw(child, 'listening', 20_000);
    const busy = saw(child, 'all under way', 20_000);
    for (let i = 0; i < MAX_CONNECTIONS; i++) {
      const c = net.connect(path);
      c.on('error', () => undefined);
      c.write(`${JSON.stringify({ op: 'reload' })}\n`);
      conns.push(c);
    }
    await busy;
    let thrown: unknown;
    try {
      requestTakeover(path);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ShardgramError);
    expect((thrown as ShardgramError).code).toBe('ERR_SHARDGRAM_BUSY');
    expect((thrown as ShardgramError).message).toMatch(/the running service said: the control socket has \d+ requests under way/);
  });
});
