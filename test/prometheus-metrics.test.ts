/**
 * /metrics as a Prometheus user expects it: checked by Prometheus's own parser and
 * linter (`promtool check metrics`), and StatsD timers as histograms whose buckets
 * count exactly what was sent.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, startServe, type Serving } from '@shardgram/test-kit/cli';
import { closeAll, openClients, send } from '@shardgram/test-kit/udp';
import { waitFor } from '@shardgram/test-kit/wait';

const havePromtool = spawnSync('sh', ['-c', 'command -v promtool']).status === 0;
if (!havePromtool) console.log('promtool is not installed here (Debian package prometheus; .ci/run installs it): the promtool checks are skipped');

/**
 * Lint findings promtool reports on the names of the statsd app's old layout
 * (promLayout=labels, kept for existing users whose queries use them): anything else fails.
 */
const KNOWN_STATSD_NAMING = [
  "shardgram_statsd_counter_total metric name should not include type 'counter'",
  "shardgram_statsd_gauge metric name should not include type 'gauge'",
];

function promtool(text: string): { code: number | null; out: string[] } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
  return {
    code: r.status,
    out: `${r.stdout}${r.stderr}`
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean),
  };
}

let serving: Serving | undefined;
afterEach(async () => {
  await serving?.stop('SIGTERM');
  serving = undefined;
});

const statsUrl = (s: Serving): string => s.stats!;
const metricsOf = async (s: Serving): Promise<string> => (await fetch(`${statsUrl(s)}/metrics`)).text();

describe('/metrics and promtool', () => {
  it.skipIf(!havePromtool)("the core's /metrics passes promtool check metrics with nothing to say", async () => {
    serving = await startServe(['echo', '--port', '0', '--workers', '2', '--stats-port', '0'], 2);
    const clients = await openClients(8);
    try {
      for (const c of clients) await send(c, 'x', serving.port);
      expect(await waitFor(async () => /^shardgram_datagrams_total\{[^}]*\} 8$/m.test(await metricsOf(serving!)), 5_000)).toBe(true);
      const text = await metricsOf(serving);
      const r = promtool(text);
      expect(r.out).toEqual([]);
      expect(r.code).toBe(0);
      // A family per name, every sample typed.
      const typed = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => m[1]));
      for (const m of text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/gm)) expect(typed.has(m[1]!), m[1]).toBe(true);
    } finally {
      closeAll(clients);
    }
  });

  it('promLayout=labels (the old layout): statsd timers are also a histogram counting every value into its bucket; promtool parses it and lints it clean', async () => {
    serving = await startServe(
      [
        'statsd',
        '--port',
        '0',
        '--workers',
        '2',
        '--stats-port',
        '0',
        '--flush-interval',
        '100',
        '--app-option',
        'timerBuckets=10,20,50,100',
        '--app-option',
        'promLayout=labels',
      ],
      2,
    );
    // Values (ms) and the bucket each falls in: ≤10, ≤20, ≤50, ≤100, +Inf. 20 lands in ≤20 (le is inclusive).
    const values = [5, 10, 15, 20, 30, 70, 200, 1, 99.5, 100];
    const clients = await openClients(5);
    try {
      for (let i = 0; i < values.length; i++) {
        await send(clients[i % clients.length]!, `lat:${values[i]}|ms`, serving.port);
        await send(clients[i % clients.length]!, `lat:${values[i]}|ms|#env:prod`, serving.port);
      }
      const countLine = /^shardgram_statsd_timer_seconds_count\{metric="lat"\} (\d+)$/m;
      expect(await waitFor(async () => countLine.exec(await metricsOf(serving!))?.[1] === String(values.length), 10_000, 50)).toBe(true);
      const text = await metricsOf(serving);
      const bucket = (le: string, tags = ''): number =>
        Number(new RegExp(`^shardgram_statsd_timer_seconds_bucket\\{metric="lat"${tags},le="${le.replace('+', '\\+')}"\\} (\\S+)$`, 'm').exec(text)?.[1]);
      const exact = (bound: number): number => values.filter((v) => v <= bound).length;
      expect([bucket('0.01'), bucket('0.02'), bucket('0.05'), bucket('0.1'), bucket('+Inf')]).toEqual([
        exact(10),
        exact(20),
        exact(50),
        exact(100),
        values.length,
      ]);
      expect(bucket('0.05', ',env="prod"')).toBe(exact(50));
      const sum = Number(/^shardgram_statsd_timer_seconds_sum\{metric="lat"\} (\S+)$/m.exec(text)?.[1]);
      expect(sum).toBeCloseTo(values.reduce((a, v) => a + v, 0) / 1000, 9);
      expect(text).toMatch(/^# TYPE shardgram_statsd_timer_seconds histogram$/m);

      if (havePromtool) {
        const r = promtool(text);
        const unexpected = r.out.filter((l) => !KNOWN_STATSD_NAMING.includes(l));
        expect(unexpected).toEqual([]);
        // Exit 1 is a parse error; 3 is lint findings only (the known names above).
        expect(r.code === 0 || (r.code === 3 && r.out.length > 0)).toBe(true);
      }
    } finally {
      closeAll(clients);
    }
  });

  it("the statsd_exporter layout (default) with a mapping file: histograms and summaries; promtool finds nothing in shardgram's own families", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shardgram-prom-'));
    const mapping = join(dir, 'mapping.yml');
    writeFileSync(
      mapping,
      [
        'defaults:',
        '  observer_type: histogram',
        '  histogram_options:',
        '    buckets: [0.01, 0.02, 0.05, 0.1]',
        'mappings:',
        '- match: "api.*.latency"',
        '  name: "api_latency_seconds"',
        '  observer_type: summary',
        '  labels:',
        '    endpoint: "$1"',
        '- match: "api.*.requests"',
        '  name: "api_requests_total"',
        '  labels:',
        '    endpoint: "$1"',
        '',
      ].join('\n'),
    );
    try {
      serving = await startServe(['statsd', '--port', '0', '--workers', '2', '--stats-port', '0', '--flush-interval', '100', '--mapping-config', mapping], 2);
      const values = [5, 10, 15, 20, 30, 70, 200, 1, 99.5, 100];
      const clients = await openClients(5);
      try {
        for (let i = 0; i < values.length; i++) {
          await send(clients[i % clients.length]!, `lat:${values[i]}|ms\napi.users.latency:${values[i]}|ms\napi.users.requests:1|c|#env:prod`, serving.port);
        }
      } finally {
        closeAll(clients);
      }
      const countLine = /^lat_count (\d+)$/m;
      expect(await waitFor(async () => countLine.exec(await metricsOf(serving!))?.[1] === String(values.length), 10_000, 50)).toBe(true);
      const text = await metricsOf(serving);
      expect(text).toMatch(/^# TYPE lat histogram$/m);
      expect(text).toMatch(/^lat_bucket\{le="\+Inf"\} 10$/m);
      expect(text).toMatch(/^# TYPE api_latency_seconds summary$/m);
      expect(text).toMatch(/^api_latency_seconds_count\{endpoint="users"\} 10$/m);
      expect(text).toMatch(/^api_requests_total\{endpoint="users",env="prod"\} 10$/m);
      if (havePromtool) {
        const r = promtool(text);
        // Names a user's metrics or mapping chose are the user's (as with statsd_exporter); shardgram's own must be clean.
        const own = r.out.filter((l) => /^shardgram_/.test(l));
        expect(own).toEqual([]);
        expect(r.code === 0 || r.code === 3, r.out.join('\n')).toBe(true); // never a parse error
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('classic buckets count a value exactly on a bound in that bound (le is inclusive, as client_golang), in both layouts, with the default histogram timers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shardgram-prom-'));
    const mapping = join(dir, 'mapping.yml');
    // statsd_exporter's DefBuckets (seconds), for every timer.
    writeFileSync(mapping, 'defaults:\n  observer_type: histogram\n');
    const boundsS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    // The old layout's default timerBuckets (ms).
    const boundsMs = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000];
    const cases = [
      { layout: 'exporter', bounds: boundsS.map(String), values: boundsS.map((b) => b * 1000), line: (le: string) => `^t_bucket\\{le="${le}"\\} (\\S+)$` },
      {
        layout: 'labels',
        bounds: boundsMs.map((b) => String(b / 1000)),
        values: boundsMs,
        line: (le: string) => `^shardgram_statsd_timer_seconds_bucket\\{metric="t",le="${le}"\\} (\\S+)$`,
      },
    ];
    try {
      for (const c of cases) {
        serving = await startServe(
          [
            'statsd',
            '--port',
            '0',
            '--workers',
            '2',
            '--stats-port',
            '0',
            '--flush-interval',
            '100',
            '--mapping-config',
            mapping,
            '--app-option',
            `promLayout=${c.layout}`,
          ],
          2,
        );
        const clients = await openClients(4);
        try {
          for (let i = 0; i < c.values.length; i++) await send(clients[i % clients.length]!, `t:${c.values[i]}|ms`, serving.port);
        } finally {
          closeAll(clients);
        }
        const inf = new RegExp(c.line('\\+Inf'), 'm');
        expect(await waitFor(async () => inf.exec(await metricsOf(serving!))?.[1] === String(c.values.length), 10_000, 50), c.layout).toBe(true);
        const text = await metricsOf(serving);
        // Value i sits on bound i: bound i's cumulative count is i + 1.
        const got = c.bounds.map((le) => Number(new RegExp(c.line(le), 'm').exec(text)?.[1]));
        expect(got, c.layout).toEqual(c.bounds.map((_le, i) => i + 1));
        await serving.stop('SIGTERM');
        serving = undefined;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the workers get the mapping file as the supervisor read it at start: one SIGKILLed after the file was broken restarts and maps as before; deprecated keys are read with a warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shardgram-prom-'));
    const mapping = join(dir, 'mapping.yml');
    // scale and the classic buckets apply in the workers; timer_type is statsd_exporter's deprecated observer_type.
    writeFileSync(mapping, 'mappings:\n- match: t\n  name: t\n  timer_type: histogram\n  scale: 2\n  histogram_options:\n    buckets: [0.01, 0.02]\n');
    try {
      serving = await startServe(['statsd', '--port', '0', '--workers', '1', '--stats-port', '0', '--flush-interval', '100', '--mapping-config', mapping], 1);
      expect(serving.stderr()).toContain(`statsd: warning: ${mapping}:4: timer_type is deprecated: use observer_type`);
      const client = (await openClients(1))[0]!;
      try {
        const expectT = async (count: number): Promise<void> => {
          const line = /^t_count (\d+)$/m;
          expect(await waitFor(async () => line.exec(await metricsOf(serving!))?.[1] === String(count), 10_000, 50)).toBe(true);
          const text = await metricsOf(serving!);
          // 10 ms = 0.01 s, times the mapping's scale 2: 0.02, in the le="0.02" bucket.
          expect(text).toMatch(/^t_bucket\{le="0.01"\} 0$/m);
          expect(text).toMatch(new RegExp(`^t_bucket\\{le="0.02"\\} ${count}$`, 'm'));
          expect(Number(/^t_sum (\S+)$/m.exec(text)?.[1])).toBeCloseTo(0.02 * count, 12);
        };
        await send(client, 't:10|ms', serving.port);
        await expectT(1);
        // Broken: a worker that read the file now would not start.
        writeFileSync(mapping, 'mappings:\n- match: t\n  name: t\n  bogus_key: 1\n');
        const victim = serving.pids[0]!;
        process.kill(victim, 'SIGKILL');
        type Stats = { workers: { pid: number; state: string; restarts: number }[] };
        const stats = async (): Promise<Stats> => (await fetch(`${statsUrl(serving!)}/stats`)).json() as Promise<Stats>;
        expect(
          await waitFor(async () => {
            const w = (await stats()).workers[0]!;
            return w.pid !== victim && w.state === 'running' && w.restarts === 1;
          }, 15_000),
        ).toBe(true);
        await send(client, 't:10|ms', serving.port);
        await expectT(2);
        expect((await stats()).workers[0]!.restarts).toBe(1);
      } finally {
        closeAll([client]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a mapping file statsd_exporter would refuse stops serve at once with its line and reason, exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shardgram-prom-'));
    const mapping = join(dir, 'bad.yml');
    writeFileSync(mapping, 'mappings:\n- match: "a.*"\n  name: "x"\n  bogus_key: 1\n');
    try {
      const r = await runCli(['serve', 'statsd', '--port', '0', '--workers', '1', '--mapping-config', mapping], { timeoutMs: 20_000 });
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(`--mapping-config must be a statsd_exporter mapping file`);
      expect(r.stderr).toContain(`${mapping}:4: unknown key "bogus_key" in a mapping`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a bad timerBuckets option stops serve at once, naming it, exit 2', async () => {
    for (const bad of ['5,1', '0,5', 'a', '']) {
      const r = await runCli(['serve', 'statsd', '--port', '0', '--workers', '1', '--app-option', `timerBuckets=${bad}`], { timeoutMs: 20_000 });
      expect(r.code, bad).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/timerBuckets/);
    }
  });
});
