/**
 * Tests and benchmarks write only in directories they make (mkdtemp) or in the
 * repository, never at a predictable path in a shared directory: there, another user
 * could have made the path first (and decide what a run executes, or make it fail), and
 * a run as root leaves what a later run as someone else cannot write.
 *
 * Every use of the OS temp dir in test/, packages/*\/test, the test kit and bench/ must be the parent
 * given to mkdtemp; no source names /tmp, /var/tmp or /dev/shm outright.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import { ROOT, runCli } from '@shardgram/test-kit/cli';

const SOURCE = /\.(ts|js|mjs|cjs|sh|py)$/;

function files(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    if (e === 'node_modules' || e === 'out' || e === 'dist') continue;
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (SOURCE.test(e)) out.push(p);
  }
  return out;
}

/** Every place in `text` that reaches into a shared temp dir other than as mkdtemp's parent. */
function sharedTempUses(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/(?:os\.)?tmpdir\(\)|\$\{?TMPDIR\}?|['"`]\/(?:tmp|var\/tmp|dev\/shm)(?:\/|['"`])/g)) {
    const before = text.slice(Math.max(0, m.index - 40), m.index);
    if (/mkdtemp(?:Sync)?\(\s*(?:path\.)?join\(\s*$/.test(before) || /mktemp\s+-d\s+(?:-p\s+)?["']?$/.test(before)) continue;
    const line = text.slice(0, m.index).split('\n').length;
    found.push(`line ${line}: ${text.split('\n')[line - 1]!.trim()}`);
  }
  return found;
}

describe('temp paths in tests and benchmarks', () => {
  it('finds what it must find', () => {
    expect(sharedTempUses('const p = join(tmpdir(), `shardgram-packed-${sha}`);')).toHaveLength(1);
    expect(sharedTempUses("spawn('x', ['--out', '/tmp/x.jsonl'])")).toHaveLength(1);
    expect(sharedTempUses('const cwd = os.tmpdir();')).toHaveLength(1);
    expect(sharedTempUses("const dir = mkdtempSync(join(tmpdir(), 'shardgram-syslog-'));")).toEqual([]);
    expect(sharedTempUses("tmp = await mkdtemp(join(os.tmpdir(), 'x-'));")).toEqual([]);
  });

  it('every use of the OS temp dir in test/, packages/*/test, packages/test-kit and bench/ is the parent of a mkdtemp', () => {
    const roots = [
      join(ROOT, 'test'),
      join(ROOT, 'bench'),
      join(ROOT, 'packages', 'test-kit', 'src'),
      ...readdirSync(join(ROOT, 'packages')).map((p) => join(ROOT, 'packages', p, 'test')),
    ];
    const self = join(ROOT, 'test', 'temp-paths.test.ts');
    const offending: string[] = [];
    for (const root of roots) {
      let list: string[];
      try {
        list = files(root);
      } catch {
        continue; // a package without tests
      }
      for (const f of list) {
        if (f === self) continue;
        for (const use of sharedTempUses(readFileSync(f, 'utf8'))) offending.push(`${relative(ROOT, f)} ${use}`);
      }
    }
    expect(offending).toEqual([]);
  });

  it("services started without --control put their sockets in this run's own directory, not in the machine's shared one", async () => {
    const run = process.env.XDG_RUNTIME_DIR ?? '';
    expect(run.startsWith(join(tmpdir(), 'shardgram-run-'))).toBe(true);
    expect(statSync(run).mode & 0o777).toBe(0o700);
    // What the CLI, started as the tests start it, says it will use.
    const r = await runCli(['scale', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`finds its control socket in ${join(run, 'shardgram')}`);
  });
});
