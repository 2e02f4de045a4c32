import { describe, expect, it } from 'vitest';
import { runCli } from '@shardgram/test-kit/cli';

describe('shardgram command line', () => {
  const bad: [string, string[], RegExp][] = [
    ['an unknown flag', ['serve', 'echo', '--port', '9000', '--bogus'], /bogus/],
    ['a port out of range', ['serve', 'echo', '--port', '70000'], /--port must be from 0 to 65535; got 70000/],
    ['a negative port', ['serve', 'echo', '--port=-1'], /--port must be a whole number/],
    ['non-numeric workers', ['serve', 'echo', '--port', '9000', '--workers', 'many'], /--workers must be a whole number from 1 to 256; got "many"/],
    ['zero workers', ['serve', 'echo', '--port', '9000', '--workers', '0'], /--workers must be from 1 to 256; got 0/],
    ['a missing port', ['serve', 'echo'], /--port is required/],
    ['a missing app', ['serve', '--port', '9000'], /which app\?/],
    ['an unknown engine', ['serve', 'echo', '--port', '9000', '--engine', 'turbo'], /--engine must be one of dgram, native; got "turbo"/],
    ['a bad rcvbuf', ['serve', 'echo', '--port', '9000', '--rcvbuf', 'lots'], /--rcvbuf must be a number of bytes/],
    ['a read delay past 100 ms', ['serve', 'echo', '--port', '9000', '--max-read-delay', '200000'], /--max-read-delay must be from 0 to 100000; got 200000/],
    ['an unknown command', ['launch'], /unknown command "launch"/],
    ['load without a port', ['load'], /--port is required/],
    ['load with a bad count', ['load', '--port', '9', '--count', '1e3'], /--count must be a whole number/],
    ['demo with one worker', ['demo', '--workers', '1'], /--workers must be from 2 to 32; got 1/],
    ['an app flag with the wrong app', ['serve', 'echo', '--port', '9000', '--flush-interval', '100'], /--flush-interval goes with the statsd app, not echo/],
    ['a bad policy', ['serve', 'echo', '--port', '9000', '--policy', 'roundrobin'], /--policy must be one of hash, random, cpu, key; got "roundrobin"/],
    [
      'key options without --policy key',
      ['serve', 'echo', '--port', '9000', '--key-delimiter', ';'],
      /--key-delimiter and --key-max-length go with --policy key/,
    ],
    [
      'a bad key length',
      ['serve', 'echo', '--port', '9000', '--policy', 'key', '--key-max-length', '999'],
      /--key-max-length must be an integer from 1 to 256/,
    ],
    ['a bad address', ['serve', 'echo', '--port', '9000', '--address', 'localhost'], /--address must be an IPv4 or IPv6 literal/],
    ['scale without workers', ['scale', '--port', '9100'], /--workers is required/],
  ];
  for (const [what, args, message] of bad) {
    it(`rejects ${what} with one line, the usage, and exit 2`, async () => {
      const r = await runCli(args, { timeoutMs: 20_000 });
      expect(r.code).toBe(2);
      const [first, second] = r.stderr.split('\n');
      expect(first).toMatch(/^shardgram: /);
      expect(first).toMatch(message);
      expect(second).toBe('');
      expect(r.stderr).toMatch(/Usage: shardgram/);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
      expect(r.stdout).toBe('');
    });
  }

  it('rejects an unknown app by naming the ones there are', async () => {
    const r = await runCli(['serve', 'nosuchapp', '--port', '0'], { timeoutMs: 20_000 });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^shardgram: unknown app "nosuchapp". Built-in apps: discard, echo/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('rejects a bad app option in one line with exit 2, before any worker starts', async () => {
    for (const [args, message] of [
      [
        ['serve', 'statsd', '--port', '0', '--flush-interval', 'soon'],
        /^shardgram: --flush-interval must be a whole number of milliseconds from 10 to 86400000; got "soon"$/,
      ],
      [['serve', 'statsd', '--port', '0', '-o', 'flushInterval=5'], /^shardgram: --app-option flushInterval must be from 10 to 86400000 milliseconds; got 5$/],
      [['serve', 'statsd', '--port', '0', '-o', 'bogus=1'], /^shardgram: unknown statsd option "bogus"/],
      [['serve', 'syslog', '--port', '0', '--keep', '0'], /^shardgram: --keep must be from 1 to 1000; got 0$/],
      [
        ['serve', 'syslog', '--port', '0', '--max-bytes', '10q'],
        /^shardgram: --max-bytes must be a number of bytes such as 4194304, 4096k, 4m or 4MiB; got "10q"$/,
      ],
    ] as const) {
      const r = await runCli([...args], { timeoutMs: 20_000 });
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr.trim()).toMatch(message);
      expect(r.stdout).not.toMatch(/ready/);
    }
  });

  it('serve --help documents every flag it accepts', async () => {
    const r = await runCli(['serve', '--help']);
    expect(r.code).toBe(0);
    for (const flag of [
      '--port',
      '--address',
      '--workers',
      '--engine',
      '--policy',
      '--key-delimiter',
      '--key-max-length',
      '--rcvbuf',
      '--rcvbuf-force',
      '--max-datagram',
      '--batch',
      '--max-read-delay',
      '--stats-port',
      '--app-option',
      '--drain-timeout',
      '--stall-timeout',
      '--change-rcvbuf',
      '--takeover',
      '--flush-interval',
      '--percentiles',
      '--json-out',
      '--graphite',
      '--out',
      '--max-bytes',
      '--keep',
      '--help',
      '--control',
      'SIGHUP',
      'shardgram scale',
    ]) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stdout).toMatch(/echo/);
    expect(r.stdout).toMatch(/discard/);
  });

  it('load --help and demo --help document their flags', async () => {
    const load = await runCli(['load', '--help']);
    for (const flag of ['--port', '--address', '--sources', '--count', '--rate', '--size', '--json', '--max-duration']) expect(load.stdout).toContain(flag);
    const demo = await runCli(['demo', '--help']);
    for (const flag of ['--workers', '--sources', '--count', '--rate', '--engine']) expect(demo.stdout).toContain(flag);
  });

  it('prints the command list with --help, and with no command exits 2', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/serve <app>/);
    const none = await runCli([]);
    expect(none.code).toBe(2);
  });

  it('demo exits 0 well under a minute, with plain lines when stdout is not a terminal', async () => {
    const started = Date.now();
    const r = await runCli(['demo', '--count', '4000', '--rate', '4000'], { timeoutMs: 60_000 });
    expect(r.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(r.stdout).not.toMatch(/\x1b/);
    expect(r.stdout).toMatch(/4 worker processes/);
    // The final table: one row per worker with pid, datagrams and share, and the fairness figures.
    const rows = [...r.stdout.matchAll(/^(\d)\s+(\d+)\s+(\d+)\s+([\d.]+)%/gm)];
    expect(rows.map((m) => Number(m[1]))).toEqual([0, 1, 2, 3]);
    const total = rows.reduce((a, m) => a + Number(m[3]), 0);
    expect(total).toBe(4000);
    for (const m of rows) expect(Number(m[3])).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/fairness: Jain 0\.\d+/);
    expect(r.stdout).toMatch(/4000 replies, 0 lost/);
  });
});
