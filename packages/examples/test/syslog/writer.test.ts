/** The shared file: whole-line O_APPEND writes from several processes, the rename chain, and the rotation rules. */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppendWriter, fileIdOfPath, rotateFiles, WriteFailure } from '../../src/syslog/writer.js';
import { RotationCoordinator } from '../../src/syslog/rotation.js';
import { tempDir } from './helpers.js';

let cleanup: (() => void) | undefined;
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
});

describe('AppendWriter', () => {
  it('four processes appending at once: every line whole, none lost', async () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const path = join(t.dir, 'shared.jsonl');
    const perProcess = 3000;
    // Lines from 20 bytes to ~12 KiB: larger than a pipe's atomic size, so only O_APPEND keeps them whole.
    // Child processes run JavaScript: the writer as built (a module of the package, not one of its exports).
    const writerJs = new URL('../../dist/syslog/writer.js', import.meta.url).href;
    const script = `
      import { AppendWriter } from '${writerJs}';
      const w = new AppendWriter(process.argv[1]);
      const id = Number(process.argv[2]);
      for (let i = 0; i < ${perProcess}; i++) {
        const pad = 'abcdefghij'.repeat((i * 7919) % 1200);
        w.write(Buffer.from(JSON.stringify({ id, i, pad }) + '\\n'));
      }
      w.close();
    `;
    const runs = [0, 1, 2, 3].map(
      (id) =>
        new Promise<number | null>((resolve) => {
          const child = spawn(process.execPath, ['--input-type=module', '-e', script, path, String(id)], { stdio: ['ignore', 'ignore', 'inherit'] });
          const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
          child.on('exit', (code) => {
            clearTimeout(timer);
            resolve(code);
          });
        }),
    );
    expect(await Promise.all(runs)).toEqual([0, 0, 0, 0]);
    const lines = readFileSync(path, 'utf8').split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(4 * perProcess);
    const seen = new Set<string>();
    for (const line of lines) {
      const r = JSON.parse(line) as { id: number; i: number; pad: string };
      expect(r.pad.length).toBe(((r.i * 7919) % 1200) * 10);
      seen.add(`${r.id}:${r.i}`);
    }
    expect(seen.size).toBe(4 * perProcess);
  });

  it('reopen moves to the file the path names now, and only then', () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const path = join(t.dir, 'f.jsonl');
    const w = new AppendWriter(path);
    w.write(Buffer.from('one\n'));
    expect(w.reopen()).toBe(false);
    renameSync(path, `${path}.1`);
    w.write(Buffer.from('two\n')); // still the old file, now named .1
    expect(w.reopen()).toBe(true);
    w.write(Buffer.from('three\n'));
    expect(w.fileId).toBe(fileIdOfPath(path));
    w.close();
    expect(readFileSync(`${path}.1`, 'utf8')).toBe('one\ntwo\n');
    expect(readFileSync(path, 'utf8')).toBe('three\n');
  });

  it('a file removed under it: the record is written again to a new file at the path; a missing directory throws until it is back', () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const dir = join(t.dir, 'd');
    mkdirSync(dir);
    const path = join(dir, 'f.jsonl');
    let now = 0;
    const w = new AppendWriter(path, () => now);
    w.write(Buffer.from('one\n'));
    unlinkSync(path);
    w.write(Buffer.from('two\n')); // went into the removed file, then again into a new one
    expect(readFileSync(path, 'utf8')).toBe('two\n');
    rmSync(dir, { recursive: true });
    expect(() => w.write(Buffer.from('three\n'))).toThrow(WriteFailure);
    mkdirSync(dir);
    expect(() => w.write(Buffer.from('four\n'))).toThrow(/cannot be created again/); // tried at most every 100 ms
    now += 100;
    w.write(Buffer.from('five\n'));
    w.close();
    expect(readFileSync(path, 'utf8')).toBe('five\n');
  });
});

describe('rotateFiles', () => {
  it('shifts file → .1 → .2 … and drops what falls past keep', () => {
    const t = tempDir();
    cleanup = t.cleanup;
    const path = join(t.dir, 'r.log');
    for (let round = 1; round <= 5; round++) {
      writeFileSync(path, `round ${round}\n`);
      rotateFiles(path, 3);
    }
    expect(existsSync(path)).toBe(false);
    expect(readFileSync(`${path}.1`, 'utf8')).toBe('round 5\n');
    expect(readFileSync(`${path}.2`, 'utf8')).toBe('round 4\n');
    expect(readFileSync(`${path}.3`, 'utf8')).toBe('round 3\n');
    expect(existsSync(`${path}.4`)).toBe(false);
    expect(() => rotateFiles(path, 0)).toThrow(RangeError);
  });
});

describe('RotationCoordinator', () => {
  function setup(maxBytes: number): { path: string; rc: RotationCoordinator; logs: string[]; broadcasts: () => number; clock: { t: number } } {
    const t = tempDir();
    cleanup = t.cleanup;
    const path = join(t.dir, 'c.jsonl');
    const logs: string[] = [];
    let n = 0;
    const clock = { t: 1_000_000 };
    const rc = new RotationCoordinator({
      path,
      maxBytes,
      keep: 2,
      log: (l) => logs.push(l),
      broadcast: () => void n++,
      checkIntervalMs: 3_600_000,
      now: () => clock.t,
    });
    rc.start();
    return { path, rc, logs, broadcasts: () => n, clock };
  }

  it('rotates at maxBytes, then waits until every live worker has reopened before rotating again', () => {
    const { path, rc, broadcasts, clock } = setup(100);
    const first = rc.currentFile;
    rc.report(11, first);
    rc.report(12, first);
    writeFileSync(path, 'x'.repeat(150), { flag: 'a' });
    rc.check();
    expect(rc.rotations).toBe(1);
    expect(broadcasts()).toBe(1);
    expect(rc.currentFile).not.toBe(first);
    expect(existsSync(`${path}.1`)).toBe(true);

    // Full again, but worker 12 still writes to the old file (now c.jsonl.1): hold.
    writeFileSync(path, 'y'.repeat(150), { flag: 'a' });
    rc.report(11, rc.currentFile);
    clock.t += 200;
    rc.report(12, first); // asks for a reopen again
    expect(broadcasts()).toBe(2);
    rc.check();
    expect(rc.rotations).toBe(1);
    expect(rc.lagging()).toEqual([12]);

    rc.report(12, rc.currentFile);
    rc.check();
    expect(rc.rotations).toBe(2);
  });

  it('a worker that has gone silent (dead, restarting) does not hold rotation back', () => {
    const { path, rc, clock } = setup(100);
    rc.report(21, 'some-old-file');
    writeFileSync(path, 'x'.repeat(150), { flag: 'a' });
    rc.check();
    expect(rc.rotations).toBe(0);
    clock.t += 2500;
    rc.check();
    expect(rc.rotations).toBe(1);
  });

  it('a final report (graceful exit) removes the worker at once', () => {
    const { path, rc } = setup(100);
    rc.report(31, 'old');
    rc.report(31, null, true);
    writeFileSync(path, 'x'.repeat(150), { flag: 'a' });
    rc.check();
    expect(rc.rotations).toBe(1);
  });

  it('notices a file moved or removed from outside, makes a new one and has the workers reopen', () => {
    const { path, rc, logs, broadcasts } = setup(0);
    const first = rc.currentFile;
    renameSync(path, `${path}.moved`);
    rc.check();
    expect(existsSync(path)).toBe(true);
    expect(rc.currentFile).not.toBe(first);
    expect(broadcasts()).toBe(1);
    expect(logs.at(-1)).toMatch(/was removed from outside; workers reopen it/);
    unlinkSync(path);
    rc.check();
    expect(existsSync(path)).toBe(true);
    expect(broadcasts()).toBe(2);
    rc.stop();
    expect(rc.rotations).toBe(0);
  });
});
