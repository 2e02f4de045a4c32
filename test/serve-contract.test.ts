/**
 * `shardgram serve` as a program talks to it: the --ready-json line, the app's flags
 * from its schema, one-line option errors (exit 2) before any worker starts, a worker's
 * fatal error said once, and a standard output that closes under the service.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, ROOT, runCli } from '@shardgram/test-kit/cli';
import { closeAll, openClients, send } from '@shardgram/test-kit/udp';
import { waitFor } from '@shardgram/test-kit/wait';

interface Running {
  child: ChildProcess;
  ready: Record<string, unknown>;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

let running: Running | undefined;
afterEach(() => {
  if (running && running.child.exitCode === null) running.child.kill('SIGKILL');
  running = undefined;
});

/** Starts `serve … --ready-json` and resolves with the parsed first stdout line. */
function serveReady(args: string[]): Promise<Running> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', ...args, '--ready-json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no ready line within 30 s:\n${out}\n${err}`));
    }, 30_000);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      const first = out === '' || !out.includes('\n');
      out += d.toString();
      if (first && out.includes('\n')) {
        clearTimeout(timer);
        running = { child, ready: JSON.parse(out.slice(0, out.indexOf('\n'))) as Record<string, unknown>, stdout: () => out, stderr: () => err, exited };
        resolve(running);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code}) before its ready line:\n${out}\n${err}`));
    });
  });
}

async function getJson(url: string): Promise<Record<string, unknown>> {
  return (await (await fetch(url)).json()) as Record<string, unknown>;
}

describe('serve --ready-json', () => {
  it('prints one JSON line naming the port, pids and stats URL; a datagram sent there is answered', async () => {
    const s = await serveReady(['echo', '--port', '0', '--workers', '2', '--stats-port', '0']);
    const r = s.ready;
    expect(Object.keys(r)).toEqual(['ready', 'pid', 'app', 'address', 'port', 'family', 'engine', 'policy', 'workers', 'stats', 'control']);
    expect(r).toMatchObject({ ready: true, pid: s.child.pid, app: 'echo', address: '127.0.0.1', family: 'udp4', engine: 'dgram', policy: 'hash' });
    expect(r.control).toMatch(/\.sock$/);
    expect(statSync(String(r.control)).isSocket()).toBe(true);
    expect(r.port).toEqual(expect.any(Number));
    expect(r.port).toBeGreaterThan(0);
    const pids = r.workers as number[];
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(() => process.kill(pid, 0)).not.toThrow();
    const stats = await getJson(`${String(r.stats)}/stats`);
    expect((stats.workers as { pid: number }[]).map((w) => w.pid).sort()).toEqual([...pids].sort());

    const [client] = await openClients(1);
    try {
      const reply = new Promise<string>((res) => client!.once('message', (m) => res(m.toString())));
      await send(client!, 'ping', r.port as number);
      expect(await reply).toMatch(/^Hello from worker [01] \(pid (\d+)\): ping$/);
    } finally {
      closeAll([client!]);
    }
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    // The ready line is all this service printed on stdout; its status lines went to stderr.
    expect(s.stdout().split('\n').filter(Boolean)).toHaveLength(1);
    expect(s.stderr()).toMatch(/worker 0 ready: pid \d+/);
    expect(s.stderr()).toMatch(/^stopped: \d+ datagrams received/m);
  });
});

describe("serve builds an app's flags and help from its schema", () => {
  it("serve statsd --help shows statsd's flags and not syslog's; plain serve --help shows both", async () => {
    const statsd = await runCli(['serve', 'statsd', '--help']);
    expect(statsd.code).toBe(0);
    for (const f of [
      '--flush-interval MS',
      '--percentiles LIST',
      '--json-out FILE',
      '--graphite HOST:PORT',
      '--remote-write URL',
      '--remote-write-labels LIST',
      'remoteWriteBacklog=',
      'remoteWriteBacklogBytes=',
      'outputStopTimeout=',
      'remoteWritePasswordFile=',
      'graphitePrefix=',
      'flushTimeout=',
    ])
      expect(statsd.stdout).toContain(f);
    expect(statsd.stdout).not.toContain('--max-bytes');
    expect(statsd.stdout).not.toContain('[object Object]');
    // A switch's default is said in the words it is written with.
    expect(statsd.stdout).toMatch(/-o influxdbTags=on\|off +read InfluxDB tags.*\(default on\)/);
    expect(statsd.stdout).not.toContain('(default true)');
    const all = await runCli(['serve', '--help']);
    for (const f of ['--flush-interval', '--max-bytes SIZE', '--keep N', '--out FILE']) expect(all.stdout).toContain(f);
    expect((await runCli(['help', 'serve'])).stdout).toBe(all.stdout);
  });

  it('an app flag and --app-option reach the app the same way; a schema key without a flag works through --app-option', async () => {
    const s = await serveReady(['statsd', '--port', '0', '--workers', '1', '--flush-interval', '250', '-o', 'flushTimeout=100', '-o', 'percentiles=50']);
    expect(s.ready.app).toBe('statsd');
    await waitFor(() => /flushing every 250 ms \(percentiles 50\)/.test(s.stderr()), 10_000);
    expect(s.stderr()).toMatch(/flushing every 250 ms \(percentiles 50\)/);
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
  });
});

describe('option errors: one line, exit 2, before any worker starts', () => {
  const cases: [string, string[], RegExp][] = [
    ['a negative worker count', ['serve', 'echo', '--port', '0', '--workers', '-3'], /^shardgram: --workers must be a whole number from 1 to 256; got "-3"$/],
    [
      'a negative worker count, short flag',
      ['serve', 'echo', '--port', '0', '-w', '-3'],
      /^shardgram: --workers must be a whole number from 1 to 256; got "-3"$/,
    ],
    ['a negative port', ['serve', 'echo', '--port', '-1'], /^shardgram: --port must be a whole number from 0 to 65535; got "-1"$/],
    ['a negative batch', ['serve', 'echo', '--port', '0', '--batch', '-64'], /^shardgram: --batch must be a whole number from 1 to 1024; got "-64"$/],
    [
      'a negative drain timeout',
      ['serve', 'echo', '--port', '0', '--drain-timeout', '-10'],
      /^shardgram: --drain-timeout must be a whole number from 0 to 3600000; got "-10"$/,
    ],
    ['a negative receive buffer', ['serve', 'echo', '--port', '0', '--rcvbuf', '-4m'], /^shardgram: --rcvbuf must be a number of bytes such as/],
    [
      'a negative stats port',
      ['serve', 'echo', '--port', '0', '--stats-port', '-5'],
      /^shardgram: --stats-port must be a whole number from 0 to 65535; got "-5"$/,
    ],
    [
      'a negative app flag',
      ['serve', 'statsd', '--port', '0', '--flush-interval', '-100'],
      /^shardgram: --flush-interval must be a whole number of milliseconds/,
    ],
    ['a negative load count', ['load', '--port', '9', '--count', '-5'], /^shardgram: --count must be a whole number from 1 to 100000000; got "-5"$/],
    ['a negative scale', ['scale', '--port', '9100', '--workers', '-2'], /^shardgram: --workers must be a whole number from 1 to 256; got "-2"$/],
    [
      'an IPv4-mapped IPv6 address',
      ['serve', 'echo', '--port', '0', '--address', '::ffff:127.0.0.1'],
      /^shardgram: --address must be written as IPv4 for an IPv4 address \(127\.0\.0\.1\), not IPv4-mapped IPv6/,
    ],
  ];
  for (const [what, args, message] of cases) {
    it(`${what}: one line of ours (not parseArgs' text), exit 2`, async () => {
      const r = await runCli(args, { timeoutMs: 20_000 });
      expect(r.code).toBe(2);
      const first = r.stderr.split('\n')[0];
      expect(first).toMatch(message);
      expect(r.stderr).not.toMatch(/ambiguous|Did you forget/);
      expect(r.stdout).toBe('');
    });
  }

  it('statsd --json-out and syslog --out into a missing directory: exit 2, one line naming the flag and the path', async () => {
    for (const [app, flag] of [
      ['statsd', '--json-out'],
      ['syslog', '--out'],
    ]) {
      const r = await runCli(['serve', app!, '--port', '0', '--workers', '1', flag!, '/nonexistent-shardgram-dir/out.jsonl'], { timeoutMs: 20_000 });
      expect(r.code).toBe(2);
      expect(r.stderr.trim()).toBe(
        `shardgram: ${flag} must be a file in an existing directory; got "/nonexistent-shardgram-dir/out.jsonl" (directory /nonexistent-shardgram-dir does not exist)`,
      );
      expect(r.stdout).toBe('');
    }
  });
});

describe("a worker's fatal load error", () => {
  it('is logged once, then the start fails naming it', async () => {
    const r = await runCli(['serve', './test/fixtures/load-fails-in-worker.js', '--port', '0', '--workers', '1'], { timeoutMs: 30_000 });
    expect(r.code).toBe(1);
    const logged = r.stderr.split('\n').filter((l) => /worker 0 \(pid \d+\): fatal: .*cannot load in a worker \(on purpose\)/.test(l));
    expect(logged).toHaveLength(1);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^shardgram: worker 0 \(pid \d+\) could not start: .*cannot load in a worker \(on purpose\)/);
  });
});

describe('an app that calls process.exit() as it loads or starts', () => {
  it('fails serve loudly (non-zero, naming the app and the call), in the supervisor and in a worker', async () => {
    const atLoad = await runCli(['serve', './test/fixtures/exit-at-load.js', '--port', '0', '--workers', '1'], { timeoutMs: 30_000 });
    expect(atLoad.code).toBe(1);
    expect(atLoad.stderr.trim()).toBe(
      'shardgram: app ./test/fixtures/exit-at-load.js called process.exit(0) while it loaded: an app must not end the process (the service would end with it). To refuse to start, throw an error instead.',
    );
    const atStart = await runCli(['serve', './test/fixtures/exit-at-start.js', '--port', '0', '--workers', '1'], { timeoutMs: 30_000 });
    expect(atStart.code).toBe(1);
    expect(atStart.stderr.trim().split('\n').at(-1)).toMatch(
      /^shardgram: worker 0 \(pid \d+\) could not start: app \S*exit-at-start\.js called process\.exit\(0\) while it started: an app must not end the process/,
    );
  });
});

describe('a standard output that closes (serve syslog | head -1)', () => {
  it('stops that output with one log line, counts the records not written, and the service runs on', async () => {
    const s = await serveReady(['syslog', '--port', '0', '--workers', '1', '--stats-port', '0']);
    const port = s.ready.port as number;
    const statsUrl = String(s.ready.stats);
    s.child.stdout!.destroy(); // the reader goes away, as `head -1` does after its line
    const [client] = await openClients(1);
    try {
      await send(client!, '<134>1 2024-01-01T00:00:00Z h app - - - first after the reader left', port);
      expect(await waitFor(() => /syslog: standard output is closed \(EPIPE\)/.test(s.stderr()), 10_000)).toBe(true);
      const more = 20;
      for (let i = 0; i < more; i++) await send(client!, `<134>1 2024-01-01T00:00:00Z h app - - - record ${i}`, port);
      // Every record arrived and is counted as unwritten; the service is alive and answering.
      const unwritten = async (): Promise<number> => {
        const m = /^shardgram_syslog_stdout_unwritten_total (\d+)$/m.exec(await (await fetch(`${statsUrl}/metrics`)).text());
        return m ? Number(m[1]) : -1;
      };
      expect(await waitFor(async () => (await unwritten()) === more + 1, 10_000)).toBe(true);
      const stats = await getJson(`${statsUrl}/stats`);
      expect((stats.total as { datagrams: number }).datagrams).toBe(more + 1);
      expect(s.child.exitCode).toBeNull();
    } finally {
      closeAll([client!]);
    }
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    expect(s.stderr().match(/syslog: standard output is closed/g)).toHaveLength(1);
    expect(s.stderr()).toMatch(/21 not written: standard output was closed/);
  });
});
