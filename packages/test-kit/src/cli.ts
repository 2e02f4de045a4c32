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
  /** The stats endpoint's base URL (`--stats-port`), null without one. */
  stats: string | null;
  /** The control socket's path. */
  control: string;
  /** What the service printed besides its ready line: data on stdout (an app's, e.g. syslog's), then its status lines. */
  output: () => string;
  stderr: () => string;
  /** Sends a signal and waits for the exit; the result's `stdout` is `output()`, the ready line left out. */
  stop(signal?: NodeJS.Signals): Promise<CliResult>;
}

interface ReadyLine {
  ready: true;
  port: number;
  workers: number[];
  stats: string | null;
  control: string;
}

/**
 * Starts `shardgram serve … --ready-json` and resolves on its ready line (one JSON
 * object on stdout; the status lines go to stderr) once it names `workers` workers.
 */
export function startServe(args: string[], workers: number, opts: SpawnOptions & { readyTimeoutMs?: number } = {}): Promise<Serving> {
  return new Promise((resolve, reject) => {
    const { readyTimeoutMs = 30_000, ...spawnOpts } = opts;
    const child = spawn(process.execPath, [BIN, 'serve', ...args, '--ready-json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...spawnOpts });
    let out = '';
    let err = '';
    let done = false;
    let readyLine = '';
    const output = (): string => `${readyLine ? out.replace(`${readyLine}\n`, '') : out}${err}`;
    const exited = new Promise<CliResult>((r) => child.on('close', (code, signal) => r({ code, signal, stdout: output(), stderr: err })));
    const timer = setTimeout(() => {
      if (!done) {
        child.kill('SIGKILL');
        reject(new Error(`serve did not get ready: ${out}\n${err}`));
      }
    }, readyTimeoutMs);
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (done) return;
      const line = out.split('\n').find((l) => l.startsWith('{"ready":true'));
      if (!line) return;
      const r = JSON.parse(line) as ReadyLine;
      if (r.workers.length !== workers) {
        done = true;
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(new Error(`serve got ready with ${r.workers.length} workers, not ${workers}: ${line}`));
        return;
      }
      done = true;
      readyLine = line;
      clearTimeout(timer);
      resolve({
        child, port: r.port, pids: r.workers, stats: r.stats, control: r.control,
        output,
        stderr: () => err,
        stop: (signal = 'SIGTERM') => {
          child.kill(signal);
          return exited;
        },
      });
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
