/**
 * The packages as a user gets them: `npm pack` packages/udp-core and packages/examples (their
 * prepack builds them), install both tarballs into a fresh project outside this repository, and
 * run `npx shardgram serve echo`, `serve statsd` and `serve syslog` there, with real datagrams
 * in and what comes out checked. Catches what only the workspace provides (a private package,
 * a file outside "files", a subpath only tests used, a root-only import).
 *
 * The installed project is cached, keyed by the tarballs' hashes, so only the first run after a
 * change pays for `npm install` (its dependencies come from npm's cache when they are there:
 * --prefer-offline). It must live outside the repository (inside, Node would find the
 * workspace's own packages by walking up), so the cache is a directory this user made with
 * mkdtemp in the OS temp dir, whose path the repository remembers; it is used again only
 * while it is still a directory (not a link) of this user's that no one else may write in.
 * Nothing at a predictable shared path, so nothing another user made beforehand decides
 * what a run executes, and a run as one user never stands in another's way.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { StatsD } from 'hot-shots';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '@shardgram/test-kit/cli';
import { parentPid } from '@shardgram/test-kit/procfs';
import { waitFor } from '@shardgram/test-kit/wait';

const CORE = join(ROOT, 'packages', 'udp-core');
const EXAMPLES = join(ROOT, 'packages', 'examples');
const STALE_MS = 3_600_000;
/** Where the repository remembers this user's cache directory (node_modules is never committed). */
const CACHE_POINTER = join(ROOT, 'node_modules', '.cache', 'shardgram-test', `packed-projects-uid-${process.getuid?.() ?? 'none'}`);

/** A real directory (not a link) owned by this user that no one else may write in or read. */
function ownPrivateDir(dir: string): boolean {
  if (!isAbsolute(dir)) return false;
  try {
    const st = lstatSync(dir);
    return st.isDirectory() && st.uid === process.getuid?.() && (st.mode & 0o077) === 0;
  } catch {
    return false;
  }
}

/**
 * This user's cache of installed projects: the one remembered, if it is still this user's
 * own, else a new one from mkdtemp (mode 0700), remembered when the repository can be
 * written. `keep` is false when it cannot: the directory is then removed after the run.
 */
function cacheDir(): { dir: string; keep: boolean } {
  try {
    const remembered = readFileSync(CACHE_POINTER, 'utf8').trim();
    if (ownPrivateDir(remembered)) return { dir: remembered, keep: true };
  } catch {
    // none yet
  }
  const dir = mkdtempSync(join(tmpdir(), 'shardgram-packed-'));
  try {
    mkdirSync(dirname(CACHE_POINTER), { recursive: true });
    writeFileSync(CACHE_POINTER, `${dir}\n`);
    return { dir, keep: true };
  } catch {
    return { dir, keep: false };
  }
}

/** The environment without npm's per-run variables, so the nested npm acts on the temp project only. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'INIT_CWD') env[k] = v;
  return env;
}

function npm(args: string[], cwd: string, timeout: number): string {
  const r = spawnSync('npm', args, { cwd, env: cleanEnv(), encoding: 'utf8', timeout });
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** `npm pack` of the package in `dir` (its prepack builds it) into `dest`. */
function pack(dir: string, dest: string): { filename: string; shasum: string } {
  const [packed] = JSON.parse(npm(['pack', '--json', '--pack-destination', dest], dir, 120_000)) as { filename: string; shasum: string }[];
  if (!packed) throw new Error(`npm pack in ${dir} printed no package`);
  return packed;
}

/** Packs udp-core and examples and returns a project dir with both tarballs installed (cached in `cache` by their sha1s). */
function installedProject(cache: string): string {
  const staging = mkdtempSync(join(cache, 'staging-'));
  const tarballs = [pack(CORE, staging), pack(EXAMPLES, staging)];
  const project = join(
    cache,
    createHash('sha1')
      .update(tarballs.map((t) => t.shasum).join(','))
      .digest('hex'),
  );
  if (existsSync(join(project, 'node_modules', '.bin', 'shardgram'))) {
    rmSync(staging, { recursive: true, force: true });
    return project;
  }
  writeFileSync(join(staging, 'package.json'), JSON.stringify({ name: 'shardgram-consumer', version: '1.0.0', private: true, type: 'module' }));
  npm(['install', ...tarballs.map((t) => `./${t.filename}`), '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], staging, 120_000);
  try {
    renameSync(staging, project);
  } catch {
    rmSync(staging, { recursive: true, force: true }); // another run got there first
  }
  // Projects of earlier tarballs (in this user's cache only), unused for an hour, go.
  for (const e of readdirSync(cache)) {
    const p = join(cache, e);
    if (p !== project && Date.now() - statSync(p).mtimeMs > STALE_MS) rmSync(p, { recursive: true, force: true });
  }
  return project;
}

interface Running {
  /** The npx process (npm exec, then a shell, then the shardgram supervisor). */
  child: ChildProcess;
  /** The shardgram supervisor itself: a signal to npx stops at the shell in between. */
  supervisorPid: number;
  port: number;
  pids: number[];
  out: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

/** `npx shardgram serve …` in `cwd`, resolved on its ready line (the JSON one of --ready-json, or the human one). */
function npxServe(cwd: string, args: string[], workers: number): Promise<Running> {
  // Its own process group, so a failed test can kill npx, the shell and the supervisor at once.
  const child = spawn('npx', ['--no', '--', 'shardgram', 'serve', ...args], { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  let err = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((r) =>
    child.on('close', (code, signal) => r({ code, signal, stderr: err })),
  );
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      killGroup(child);
      reject(new Error(`serve did not get ready:\n${out}\n${err}`));
    }, 20_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (done) return;
      let ready: { pid?: number; port: number; pids: number[] } | undefined;
      for (const line of out.split('\n')) {
        if (!line.startsWith('{')) continue;
        const j = JSON.parse(line) as { ready?: boolean; pid?: number; port?: number; workers?: number[] };
        if (j.ready === true && j.port !== undefined && j.workers) ready = { pid: j.pid, port: j.port, pids: j.workers };
      }
      const human = /^shardgram: \S+ on udp [\d.]+:(\d+) with /m.exec(out);
      if (!ready && human) ready = { port: Number(human[1]), pids: [...out.matchAll(/^worker \d+ ready: pid (\d+)/gm)].map((m) => Number(m[1])) };
      if (!ready) return;
      done = true;
      clearTimeout(timer);
      if (ready.pids.length !== workers || ready.pids[0] === undefined) {
        reject(new Error(`expected ${workers} worker pids in:\n${out}`));
        return;
      }
      const supervisorPid = ready.pid ?? parentPid(ready.pids[0]);
      if (supervisorPid === undefined) {
        reject(new Error(`worker ${ready.pids[0]} is gone before its supervisor could be found:\n${out}`));
        return;
      }
      resolve({ child, supervisorPid, port: ready.port, pids: ready.pids, out: () => out, exited });
    });
    void exited.then((r) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`serve exited (${r.code ?? r.signal}) before ready:\n${out}\n${r.stderr}`));
    });
  });
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function roundTrip(port: number, payload: string): Promise<string> {
  const sock = dgram.createSocket('udp4');
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no reply within 5 s')), 5_000);
    sock.on('error', reject);
    sock.on('message', (msg) => {
      clearTimeout(timer);
      resolve(msg.toString('latin1'));
    });
    sock.send(payload, port, '127.0.0.1');
  }).finally(() => sock.close());
}

describe('the published package, installed in a project of its own', () => {
  let project = '';
  let cache: { dir: string; keep: boolean } | undefined;
  /** This run's output files (in the user's private cache dir, removed after the run). */
  let out = '';
  const running: ChildProcess[] = [];
  beforeAll(() => {
    cache = cacheDir();
    project = installedProject(cache.dir);
    out = mkdtempSync(join(cache.dir, 'run-'));
  }, 300_000);
  afterAll(() => {
    for (const c of running) killGroup(c);
    if (out) rmSync(out, { recursive: true, force: true });
    if (cache && !cache.keep) rmSync(cache.dir, { recursive: true, force: true });
  });

  it('has nothing of this repository but its own files and its dependencies, and each package its licence and types', () => {
    const installed = readdirSync(join(project, 'node_modules', '@shardgram'));
    expect(installed.sort()).toEqual(['examples', 'udp-core']);
    for (const name of installed) {
      const dir = join(project, 'node_modules', '@shardgram', name);
      expect(readdirSync(dir).sort(), name).toEqual(
        name === 'udp-core' ? ['LICENSE', 'bin', 'dashboard', 'dist', 'package.json', 'proto'] : ['LICENSE', 'dist', 'package.json'],
      );
      expect(readFileSync(join(dir, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n/);
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { private?: boolean; license?: string };
      expect(manifest.private, name).toBeUndefined();
      expect(manifest.license, name).toBe('MIT');
      expect(existsSync(join(dir, 'dist', 'index.d.ts')), name).toBe(true);
      expect(existsSync(join(dir, 'dist', '.tsbuildinfo')), name).toBe(false);
    }
  });

  it('`npx shardgram serve echo` answers "Hello from worker" and stops on SIGTERM with exit 0', async () => {
    const s = await npxServe(project, ['echo', '--port', '0', '--workers', '2'], 2);
    running.push(s.child);
    const nonce = `ping ${process.pid}-${Date.now()}`;
    const reply = await roundTrip(s.port, nonce);
    const m = /^Hello from worker ([01]) \(pid (\d+)\): (.*)$/s.exec(reply);
    expect(m, reply).not.toBeNull();
    expect(s.pids).toContain(Number(m![2]));
    expect(m![3]).toBe(nonce);
    process.kill(s.supervisorPid, 'SIGTERM');
    const r = await s.exited;
    expect(r.code, r.stderr).toBe(0);
    expect(s.out()).toMatch(/^stopped: 1 datagrams received/m);
  });

  it('`npx shardgram serve statsd` (from @shardgram/examples) flushes what a hot-shots client sent to its --json-out file', async () => {
    const json = join(out, 'statsd.jsonl');
    const s = await npxServe(project, ['statsd', '--port', '0', '--workers', '2', '--json-out', json, '--flush-interval', '200', '--ready-json'], 2);
    running.push(s.child);
    const client = new StatsD({ host: '127.0.0.1', port: s.port, protocol: 'udp' });
    client.increment('packed.count', 3);
    client.timing('packed.time', 5);
    await new Promise<void>((resolve) => client.close(() => resolve()));
    type Flush = { counters: Record<string, number>; timers: Record<string, { count: number; max: number }>; final: boolean };
    const flushes = (): Flush[] =>
      existsSync(json)
        ? readFileSync(json, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Flush)
        : [];
    const sent = (f: Flush): boolean => f.counters['packed.count'] !== undefined;
    expect(await waitFor(() => flushes().some(sent), 10_000), readFileSync(json, 'utf8')).toBe(true);
    const got = flushes().filter(sent);
    expect(got).toHaveLength(1);
    expect(got[0]!.counters['packed.count']).toBe(3);
    expect(got[0]!.timers['packed.time']).toMatchObject({ count: 1, max: 5 });
    process.kill(s.supervisorPid, 'SIGTERM');
    const r = await s.exited;
    expect(r.code, r.stderr).toBe(0);
    expect(flushes().at(-1)!.final).toBe(true);
  });

  it('`npx shardgram serve syslog` (from @shardgram/examples) writes what logger sent as a record in its --out file', async () => {
    const file = join(out, 'syslog.jsonl');
    const s = await npxServe(project, ['syslog', '--port', '0', '--workers', '2', '--out', file, '--ready-json'], 2);
    running.push(s.child);
    const nonce = `packed ${process.pid}-${Date.now()}`;
    const logger = spawnSync('logger', ['-d', '-n', '127.0.0.1', '-P', String(s.port), '--rfc5424', '-t', 'packedtest', '-p', 'local3.warning', nonce], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(logger.status, logger.stderr).toBe(0);
    type Rec = { format: string; facility: string; severity: string; message: string; senderAddress: string; workerPid: number };
    const records = (): Rec[] =>
      existsSync(file)
        ? readFileSync(file, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Rec)
        : [];
    expect(await waitFor(() => records().length >= 1, 10_000)).toBe(true);
    const [rec, ...more] = records();
    expect(more).toEqual([]);
    expect(rec).toMatchObject({ format: 'rfc5424', facility: 'local3', severity: 'warning', message: nonce, senderAddress: '127.0.0.1' });
    expect(s.pids).toContain(rec!.workerPid);
    process.kill(s.supervisorPid, 'SIGTERM');
    const r = await s.exited;
    expect(r.code, r.stderr).toBe(0);
  });

  it('types every subpath: a strict NodeNext consumer compiles against the installed declarations', () => {
    const file = join(project, 'consumer.ts');
    writeFileSync(
      file,
      [
        "import { Supervisor, defineApp, defineAppSupervisor, ShardgramError, startStatsServer, type StatsReport, type SteeringPolicy } from '@shardgram/udp-core';",
        "import { parsePolicy, CbpfBuilder, runProgram } from '@shardgram/udp-core/steering';",
        "import { runLoad, parseEchoReply, encodeProbe, NativeSender } from '@shardgram/udp-core/load';",
        "import { openReusePortSocket, socketMemInfo, findPortHolders } from '@shardgram/udp-core/sockets';",
        "import { fairness, toPrometheus, decodeSnapshot, STATS_SERVER_DEFAULTS } from '@shardgram/udp-core/stats';",
        "import { defineAppOptions, parseAppOptions, wholeNumber, byteSize, textMatching, outputFile, kebabCase, OptionValueError, parseByteSize, formatByteSize, type AppOptionSchema } from '@shardgram/udp-core/app-options';",
        "import { PromWriter } from '@shardgram/udp-core/prom';",
        "import { statsd, syslog, parseDatagram, parseSyslog, parseRfc5424, parseRfc3164, parsePri, toRecord, recordLine, type MetricSink, type SyslogRecord } from '@shardgram/examples';",
        "import statsdApp from '@shardgram/examples/statsd';",
        "import syslogApp from '@shardgram/examples/syslog';",
        'const rec: SyslogRecord | undefined = undefined;',
        'const sink: MetricSink | undefined = undefined;',
        "const policy: SteeringPolicy = parsePolicy('random');",
        'const report: StatsReport | undefined = undefined;',
        'export const all = [Supervisor, defineApp, defineAppSupervisor, ShardgramError, startStatsServer, CbpfBuilder, runProgram, runLoad,',
        '  parseEchoReply, encodeProbe, NativeSender, openReusePortSocket, socketMemInfo, findPortHolders, fairness, toPrometheus, decodeSnapshot,',
        '  PromWriter, policy, report, STATS_SERVER_DEFAULTS, defineAppOptions, parseAppOptions, wholeNumber, byteSize, textMatching, outputFile, kebabCase,',
        '  OptionValueError, parseByteSize, formatByteSize, statsd, syslog, parseDatagram, parseSyslog, parseRfc5424, parseRfc3164, parsePri, toRecord, recordLine,',
        '  statsdApp, syslogApp, rec, sink];',
        "export const schema: AppOptionSchema = defineAppOptions({ every: { value: 'MS', help: 'h', parse: wholeNumber(1, 10), default: 5 } });",
        '',
      ].join('\n'),
    );
    const tsc = spawnSync(
      process.execPath,
      [
        join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
        '--noEmit',
        '--strict',
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--skipLibCheck',
        '--types',
        'node',
        '--typeRoots',
        join(ROOT, 'node_modules', '@types'),
        'consumer.ts',
      ],
      { cwd: project, encoding: 'utf8', timeout: 30_000 },
    );
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
    // And the root carries what an app author needs, no more: the option kit is /app-options, the stats server's limits /stats.
    const root = spawnSync(process.execPath, ['--input-type=module', '-e', "console.log(Object.keys(await import('@shardgram/udp-core')).sort().join(','))"], {
      cwd: project,
      encoding: 'utf8',
    });
    expect(root.stdout.trim()).toBe('ShardgramError,Supervisor,defineApp,defineAppSupervisor,describeError,escapeText,guardOutput,sampledLog,startStatsServer');
    // The examples' root: the two apps and their parsers (docs/statsd.md, docs/syslog.md), no more.
    const examples = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', "console.log(Object.keys(await import('@shardgram/examples')).sort().join(','))"],
      {
        cwd: project,
        encoding: 'utf8',
      },
    );
    expect(examples.stdout.trim()).toBe(
      'BAD_LINE_CODES,FACILITY_NAMES,SEVERITY_NAMES,parseDatagram,parsePri,parseRfc3164,parseRfc5424,parseSyslog,recordLine,statsd,syslog,toRecord',
    );
    // The examples' modules are theirs: only the apps and the root are exported.
    const inner = spawnSync(process.execPath, ['--input-type=module', '-e', "await import('@shardgram/examples/statsd/merge')"], {
      cwd: project,
      encoding: 'utf8',
    });
    expect(inner.status).not.toBe(0);
    expect(inner.stderr).toContain('ERR_PACKAGE_PATH_NOT_EXPORTED');
  });

  it('finds an app package installed in the project by name, and says what to install for one that is not', async () => {
    // A third-party app package as npm would lay it out: it imports the project's own udp-core.
    const pkg = join(project, 'node_modules', 'shardgram-app-upper');
    mkdirSync(pkg, { recursive: true });
    writeFileSync(
      join(pkg, 'package.json'),
      JSON.stringify({ name: 'shardgram-app-upper', version: '1.0.0', type: 'module', shardgram: { apps: { upper: './index.js' } } }),
    );
    writeFileSync(
      join(pkg, 'index.js'),
      "import { defineApp } from '@shardgram/udp-core';\n" +
        "export default defineApp((socket) => socket.on('message', (msg, r) => socket.send(msg.toString().toUpperCase(), r.port, r.address)));\n",
    );
    const s = await npxServe(project, ['upper', '--port', '0', '--workers', '2'], 2);
    running.push(s.child);
    expect(await roundTrip(s.port, 'quiet')).toBe('QUIET');
    process.kill(s.supervisorPid, 'SIGTERM');
    expect((await s.exited).code).toBe(0);

    const missing = spawnSync('npx', ['--no', '--', 'shardgram', 'serve', 'wordcount', '--port', '0'], {
      cwd: project,
      env: cleanEnv(),
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/unknown app "wordcount"\. Built-in apps: discard, echo\./);
    expect(missing.stderr).toMatch(/shardgram-app-wordcount \(not installed\), @shardgram\/examples \(installed; has statsd, syslog\)/);
    expect(missing.stderr).toContain('npm install shardgram-app-wordcount');
  });
});
