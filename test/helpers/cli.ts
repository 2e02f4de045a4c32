/** Runs the real `shardgram` command in a child process. */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { bigRcvbufArgs } from './rcvbuf.js';

export const BIN = fileURLToPath(new URL('../../packages/udp-core/bin/shardgram.js', import.meta.url));
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Tests that want a large receive buffer ask for it with these flags: forced past
 * net.core.rmem_max as root, capped at it otherwise; the tests pass either way (./rcvbuf.ts).
 */
export const BIG_RCVBUF = (size = '1m'): string[] => bigRcvbufArgs(size);

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], opts: SpawnOptions & { timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export interface Serving {
  child: ChildProcess;
  port: number;
  pids: number[];
  stdout: () => string;
  stderr: () => string;
  /** Sends a signal and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<CliResult>;
}

/** Starts `shardgram serve …` and resolves once every worker has printed its ready line. */
export function startServe(args: string[], workers: number, opts: SpawnOptions = {}): Promise<Serving> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    let err = '';
    const pids = new Map<number, number>();
    let port = 0;
    let done = false;
    const exited = new Promise<CliResult>((r) => child.on('close', (code, signal) => r({ code, signal, stdout: out, stderr: err })));
    const timer = setTimeout(() => {
      if (!done) {
        child.kill('SIGKILL');
        reject(new Error(`serve did not get ready: ${out}\n${err}`));
      }
    }, 30_000);
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      for (const m of out.matchAll(/worker (\d+) ready: pid (\d+), udp (?:\[.*\]|[\d.]+):(\d+)/g)) {
        pids.set(Number(m[1]), Number(m[2]));
        port = Number(m[3]);
      }
      if (!done && pids.size === workers && /^shardgram: /m.test(out)) {
        done = true;
        clearTimeout(timer);
        resolve({
          child, port, pids: [...pids.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]),
          stdout: () => out, stderr: () => err,
          stop: (signal = 'SIGTERM') => {
            child.kill(signal);
            return exited;
          },
        });
      }
    });
    void exited.then((r) => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        reject(new Error(`serve exited (${r.code}) before ready:\n${r.stdout}\n${r.stderr}`));
      }
    });
  });
}
