/** Helpers for the syslog service tests: a service and a temp dir per test, reading the JSON-lines output. */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { SyslogRecord } from '@shardgram/examples';
import { afterEach } from 'vitest';
import { startServe, type Serving } from '@shardgram/test-kit/cli';
import { waitFor } from '@shardgram/test-kit/wait';

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'shardgram-syslog-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Every line of the file must be a whole JSON record. */
export function readRecords(path: string): SyslogRecord[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  if (!text) return [];
  if (!text.endsWith('\n')) throw new Error(`${path} does not end with a line break`);
  return text
    .slice(0, -1)
    .split('\n')
    .map((line, i) => {
      try {
        return JSON.parse(line) as SyslogRecord;
      } catch {
        throw new Error(`${path} line ${i + 1} is not one JSON record: ${line.slice(0, 200)}`);
      }
    });
}

/** Lines in the file so far (cheap polling; a partial last line is not counted). */
export function countLines(path: string): number {
  if (!existsSync(path)) return 0;
  const buf = readFileSync(path);
  let n = 0;
  for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10, i + 1)) n++;
  return n;
}

export function haveCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** `serve syslog` arguments: `workers` workers on a free port, each app option as `--app-option k=v`, then `extra`. */
export function syslogArgs(workers: number, appOptions: Record<string, string>, extra: string[] = []): string[] {
  const args = ['syslog', '--port', '0', '--workers', String(workers), ...extra];
  for (const [k, v] of Object.entries(appOptions)) args.push('--app-option', `${k}=${v}`);
  return args;
}

/** A test file's `serve syslog`: at most one per test, stopped (SIGTERM) after it with its temp directory removed. */
export interface SyslogPerTest {
  /** Starts `serve syslog` (see `syslogArgs`) and waits for its workers. */
  serve(workers: number, appOptions: Record<string, string>, extra?: string[]): Promise<Serving>;
  /** A temp directory of this test's own. */
  dir(): string;
  /** The test stopped the service itself: nothing is left to stop. */
  stopped(): void;
}

/** Call once at a test file's top level: registers the afterEach that stops and removes. */
export function syslogPerTest(): SyslogPerTest {
  let serving: Serving | undefined;
  let cleanup: (() => void) | undefined;
  afterEach(async () => {
    await serving?.stop('SIGTERM');
    serving = undefined;
    cleanup?.();
    cleanup = undefined;
  });
  return {
    async serve(workers, appOptions, extra = []) {
      serving = await startServe(syslogArgs(workers, appOptions, extra), workers);
      return serving;
    },
    dir() {
      const t = tempDir();
      cleanup = t.cleanup;
      return t.dir;
    },
    stopped() {
      serving = undefined;
    },
  };
}

/** Waits until `path` has `n` lines (or the time is up), then reads them. */
export async function recordsWhen(path: string, n: number, timeoutMs = 10_000): Promise<SyslogRecord[]> {
  await waitFor(() => countLines(path) >= n, timeoutMs);
  return readRecords(path);
}
