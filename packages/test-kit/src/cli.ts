/** Runs the real `shardgram` command in a child process. */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bigRcvbufArgs } from './rcvbuf.js';

/** The `shardgram` command of the installed @shardgram/udp-core, found as npm would (its package.json "bin"). */
function shardgramBin(): string {
  const manifest = createRequire(import.meta.url).resolve('@shardgram/udp-core/package.json');
  const bin = (JSON.parse(readFileSync(manifest, 'utf8')) as { bin: { shardgram: string } }).bin.shardgram;
  return join(dirname(manifest), bin);
}

export const BIN = shardgramBin();
/** The repository (this file is packages/test-kit/dist/cli.js): where the tests' fixtures are. */
export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

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
  /** Everything it printed, ready line included: stdout, then stderr. */
  log: () => string;
  /** Resolves when it has exited (the result's `stdout` is `output()`). */
  exited: Promise<CliResult>;
  /**
   * Sends a signal (unless it has exited already) and waits for the exit; the result's `stdout`
   * is `output()`, the ready line left out. With `killAfterMs`, a SIGKILL follows if it is still there then.
   */
  stop(signal?: NodeJS.Signals, killAfterMs?: number): Promise<CliResult>;
}

export interface ServeOptions extends SpawnOptions {
  /** How long it may take to print its ready line (default 30 s). */
  readyTimeoutMs?: number;
  /** The `shardgram` command to run (default: BIN; e.g. another built checkout's, for an A/B run). */
  bin?: string;
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
export function startServe(args: string[], workers: number, opts: ServeOptions = {}): Promise<Serving> {
  return new Promise((resolve, reject) => {
    const { readyTimeoutMs = 30_000, bin = BIN, ...spawnOpts } = opts;
    const child = spawn(process.execPath, [bin, 'serve', ...args, '--ready-json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...spawnOpts });
    let out = '';
    let err = '';
    let done = false;
    let readyLine = '';
    const output = (): string => `${readyLine ? out.replace(`${readyLine}\n`, '') : out}${err}`;
    const exited = new Promise<CliResult>((r) => child.on('close', (code, signal) => r({ code, signal, stdout: output(), stderr: err })));
    const timer = setTimeout(() => {
      if (!done) {
        child.kill('SIGKILL');
        reject(new Error(`serve did not get ready within ${readyTimeoutMs} ms: ${out}\n${err}`));
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
        child,
        port: r.port,
        pids: r.workers,
        stats: r.stats,
        control: r.control,
        output,
        stderr: () => err,
        log: () => `${out}${err}`,
        exited,
        stop: async (signal = 'SIGTERM', killAfterMs) => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          if (killAfterMs === undefined) return exited;
          const t = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
          const r = await exited;
          clearTimeout(t);
          return r;
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
