/**
 * The syslog app as a service (`shardgram serve syslog`) receiving: real clients (util-linux
 * logger, the npm syslog-client) in both formats, IPv6, malformed datagrams stored and
 * counted on /metrics, JSON lines on standard output, and bad app options refused. What
 * survives a killed worker, a stop and rotation: durability.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import { closeAll, openClients, send } from '@shardgram/test-kit/udp';
import { waitFor } from '@shardgram/test-kit/wait';
import { haveCommand, recordsWhen, syslogPerTest, tempDir } from './helpers.js';
import type { SyslogRecord } from '@shardgram/examples';

const run = promisify(execFile);
const haveLogger = haveCommand('logger');

interface SyslogClientModule {
  createClient(
    target: string,
    options: Record<string, unknown>,
  ): {
    log(message: string, options: Record<string, unknown>, cb: (err?: Error) => void): void;
    close(): void;
    on(event: 'error', cb: (err: Error) => void): void;
  };
  Facility: Record<string, number>;
  Severity: Record<string, number>;
}
const syslogClient = createRequire(import.meta.url)('syslog-client') as SyslogClientModule;

const service = syslogPerTest();

/** Records whose message starts with the word `marker`. */
function byMarker(records: SyslogRecord[], marker: string): SyslogRecord[] {
  return records.filter((r) => r.message?.split(' ')[0] === marker);
}

describe('syslog: real clients', () => {
  it.skipIf(!haveLogger)('util-linux logger, RFC 5424 and RFC 3164: every message once, with the right fields', async () => {
    const dir = service.dir();
    const out = join(dir, 'syslog.jsonl');
    const s = await service.serve(2, { out });
    const net = ['-d', '-n', '127.0.0.1', '-P', String(s.port)];
    const long = `LLONG ${'L'.repeat(4000)} end`;
    const sent: { marker: string; args: string[]; check: (r: SyslogRecord) => void }[] = [];
    const add = (marker: string, args: string[], check: (r: SyslogRecord) => void): void => void sent.push({ marker, args, check });

    for (let i = 0; i < 12; i++) {
      const m = `L5424-${i}`;
      add(
        m,
        [
          '--rfc5424',
          '-t',
          `app${i}`,
          '-p',
          `local${i % 8}.${['err', 'info', 'debug', 'warning'][i % 4]}`,
          '--msgid',
          `ID${i}`,
          '--sd-id',
          'test@32473',
          '--sd-param',
          `seq="${i}"`,
          '--sd-param',
          'tricky="q\\"b\\\\s\\]e"',
          `${m} héllo wörld ✓ 日本語`,
        ],
        (r) => {
          expect(r).toMatchObject({
            format: 'rfc5424',
            version: 1,
            facility: `local${i % 8}`,
            severity: ['err', 'info', 'debug', 'warning'][i % 4],
            appName: `app${i}`,
            msgId: `ID${i}`,
            message: `${m} héllo wörld ✓ 日本語`,
            error: null,
            raw: null,
            senderAddress: '127.0.0.1',
          });
          expect(r.hostname).toBeTruthy();
          expect(r.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d$/);
          expect(r.structuredData?.['test@32473']).toEqual({ seq: String(i), tricky: 'q"b\\s]e' });
          expect(r.structuredData?.timeQuality).toMatchObject({ tzKnown: '1' });
        },
      );
    }
    for (let i = 0; i < 8; i++) {
      const m = `L3164-${i}`;
      add(m, ['--rfc3164', '-i', '-t', `bsd${i}`, '-p', `daemon.notice`, `${m} plain ascii and ünïcode`], (r) => {
        expect(r).toMatchObject({
          format: 'rfc3164',
          facility: 'daemon',
          severity: 'notice',
          appName: `bsd${i}`,
          message: `${m} plain ascii and ünïcode`,
          error: null,
          version: null,
          msgId: null,
          structuredData: null,
        });
        expect(r.procId).toMatch(/^\d+$/);
        expect(r.hostname).toBeTruthy();
        expect(r.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
      });
    }
    add('LLONG', ['--rfc5424', '--size', '8192', '-t', 'longapp', long], (r) => {
      expect(r.message).toBe(long);
      expect(r.bytes).toBeGreaterThan(4000);
    });
    add('LNOTIME', ['--rfc5424=notq,notime,nohost', '-t', 'bare', 'LNOTIME message'], (r) => {
      expect(r).toMatchObject({ timestamp: null, hostname: null, appName: 'bare', structuredData: null, message: 'LNOTIME message', error: null });
    });
    // (logger sends kern as user: kern is the kernel's own.)
    add('LFTP', ['--rfc5424', '-p', 'ftp.emerg', '-t', 'k', 'LFTP panic'], (r) => expect(r).toMatchObject({ pri: 88, facility: 'ftp', severity: 'emerg' }));
    add('LAUTH', ['--rfc3164', '-p', 'authpriv.alert', '-t', 'sudo', 'LAUTH sudo'], (r) =>
      expect(r).toMatchObject({ pri: 81, facility: 'authpriv', severity: 'alert', appName: 'sudo' }),
    );

    for (const x of sent) await run('logger', [...net, ...x.args]);
    // Several lines on stdin: one message each.
    await new Promise<void>((resolve, reject) => {
      const child = execFile('logger', [...net, '--rfc3164', '-t', 'stdin'], (err) => (err ? reject(err) : resolve()));
      child.stdin!.end('LSTDIN-a first line\nLSTDIN-b second line\n');
    });

    const total = sent.length + 2;
    const records = await recordsWhen(out, total);
    expect(records).toHaveLength(total);
    for (const x of sent) {
      const found = byMarker(records, x.marker);
      expect(found, x.marker).toHaveLength(1);
      x.check(found[0]!);
    }
    expect(byMarker(records, 'LSTDIN-a')).toMatchObject([{ appName: 'stdin', message: 'LSTDIN-a first line' }]);
    expect(byMarker(records, 'LSTDIN-b')).toMatchObject([{ appName: 'stdin', message: 'LSTDIN-b second line' }]);
    // Each logger run has its own source port: both workers took part.
    expect(new Set(records.map((r) => r.worker))).toEqual(new Set([0, 1]));
    expect(new Set(records.map((r) => r.workerPid))).toEqual(new Set(s.pids));
    for (const r of records) expect(r.senderPort).toBeGreaterThan(0);
  });

  it('npm syslog-client, RFC 5424 and RFC 3164: every message once, with the right fields', async () => {
    const dir = service.dir();
    const out = join(dir, 'syslog.jsonl');
    const s = await service.serve(2, { out });
    const { Facility } = syslogClient;
    const clients = Array.from({ length: 6 }, (_, i) =>
      syslogClient.createClient('127.0.0.1', { port: s.port, rfc3164: i % 2 === 1, appName: `nodeapp${i}`, syslogHostname: `host${i}.example` }),
    );
    const log = (c: (typeof clients)[number], msg: string, options: Record<string, unknown>): Promise<void> =>
      new Promise((resolve, reject) => c.log(msg, options, (err) => (err ? reject(err) : resolve())));
    const expected = new Map<string, Partial<SyslogRecord>>();
    const sevNames = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'] as const;
    const facs: [number, string][] = [
      [Facility.Kernel!, 'kern'],
      [Facility.User!, 'user'],
      [Facility.Audit!, 'audit'],
      [Facility.Local0!, 'local0'],
      [Facility.Local7!, 'local7'],
    ];
    let n = 0;
    const stamp = new Date('2025-03-04T05:06:07.089Z');
    for (let k = 0; k < 60; k++) {
      const ci = k % clients.length;
      const rfc3164 = ci % 2 === 1;
      const [fac, facName] = facs[k % facs.length]!;
      const sev = k % 8;
      const marker = `SC-${k}`;
      const text = k % 5 === 0 ? `${marker} ünïcödé ✓ with "quotes" and [brackets]` : `${marker} message number ${k}`;
      await log(clients[ci]!, text, { facility: fac, severity: sev, msgid: rfc3164 ? undefined : `M${k}`, timestamp: k % 3 === 0 ? stamp : undefined });
      n++;
      expected.set(marker, {
        format: rfc3164 ? 'rfc3164' : 'rfc5424',
        facility: facName as SyslogRecord['facility'],
        severity: sevNames[sev],
        hostname: `host${ci}.example`,
        message: text,
        error: null,
        raw: null,
        ...(rfc3164
          ? { appName: null, procId: null, msgId: null, structuredData: null }
          : {
              appName: `nodeapp${ci}`,
              procId: String(process.pid),
              msgId: `M${k}`,
              structuredData: null,
              ...(k % 3 === 0 ? { timestamp: stamp.toISOString() } : {}),
            }),
      });
    }
    for (const c of clients) c.close();
    const records = await recordsWhen(out, n);
    expect(records).toHaveLength(n);
    for (const [marker, want] of expected) {
      const found = byMarker(records, marker);
      expect(found, marker).toHaveLength(1);
      expect(found[0], marker).toMatchObject(want);
    }
    const bsd = records.filter((r) => r.format === 'rfc3164');
    expect(bsd.length).toBe(30);
    for (const r of bsd) expect(r.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
  });
});

describe('syslog: IPv6', () => {
  it('serves on ::1 and records the IPv6 sender', async () => {
    const dir = service.dir();
    const out = join(dir, 'v6.jsonl');
    const s = await service.serve(1, { out }, ['--address', '::1']);
    const c = syslogClient.createClient('::1', { port: s.port, rfc3164: false, appName: 'v6app', syslogHostname: 'v6host' });
    await new Promise<void>((resolve, reject) => c.log('over IPv6', { msgid: 'V6' }, (err) => (err ? reject(err) : resolve())));
    c.close();
    const [r] = await recordsWhen(out, 1);
    expect(r).toMatchObject({ senderAddress: '::1', hostname: 'v6host', appName: 'v6app', msgId: 'V6', message: 'over IPv6', worker: 0 });
  });
});

describe('syslog: malformed input, metrics, standard output', () => {
  it('stores malformed datagrams with text, bytes and error; counts them on /metrics; the workers live on', async () => {
    const dir = service.dir();
    const out = join(dir, 'm.jsonl');
    const s = await service.serve(2, { out }, ['--stats-port', '0']);
    const bad: Buffer[] = [
      Buffer.from('<999>too big'),
      Buffer.from('<13>1 2025-13-01T00:00:00Z h a p m - bad month'),
      Buffer.from('<13>1 - h a p m [x@1 a="unterminated] msg'),
      Buffer.concat([Buffer.from('<abc>'), Buffer.from([0xff, 0xfe, 0xfd])]),
      Buffer.alloc(0),
      Buffer.concat([Buffer.from('<13>1 - h a p m [big'), Buffer.alloc(60_000, 0xfe)]), // large, and no UTF-8
    ];
    const good = [
      Buffer.from('<13>1 - h a p m - fine'),
      Buffer.concat([Buffer.from('<13>Jun 15 10:00:00 h a: caf'), Buffer.from([0xe9])]),
      Buffer.from('<13>2 - h a p m - version two'), // another VERSION: parsed by the 5424 grammar, recorded (docs/syslog.md)
    ];
    const clients = await openClients(8);
    try {
      let k = 0;
      for (const b of [...bad, ...good]) await send(clients[k++ % clients.length]!, b, s.port);
      const records = await recordsWhen(out, bad.length + good.length);
      expect(records).toHaveLength(bad.length + good.length);
      const malformed = records.filter((r) => r.error !== null);
      expect(malformed).toHaveLength(bad.length);
      for (const b of bad) {
        const r = malformed.find((m) => Buffer.from(m.raw!, 'base64').equals(b));
        expect(r, b.toString('latin1')).toBeDefined();
        expect(r!.message).toBe(b.toString('utf8'));
      }
      expect(malformed.find((r) => r.raw === '')?.error).toBe('empty datagram');
      const latin1 = records.find((r) => r.message === 'caf\uFFFD')!;
      expect(latin1).toMatchObject({ error: null, format: 'rfc3164', appName: 'a' });
      expect(Buffer.from(latin1.raw!, 'base64').equals(good[1]!)).toBe(true);
      expect(records.find((r) => r.message === 'version two')).toMatchObject({ error: null, format: 'rfc5424', version: 2, appName: 'a', msgId: 'm' });

      const statsUrl = s.stats!;
      const sumOf = (text: string, name: string): number =>
        [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
      let metrics = '';
      expect(
        await waitFor(async () => {
          metrics = await (await fetch(`${statsUrl}/metrics`)).text();
          return sumOf(metrics, 'shardgram_syslog_written_total') === bad.length + good.length;
        }, 5_000),
      ).toBe(true);
      expect(sumOf(metrics, 'shardgram_syslog_malformed_total')).toBe(bad.length);
      expect(sumOf(metrics, 'shardgram_syslog_not_utf8_total')).toBe(3);
      expect(sumOf(metrics, 'shardgram_syslog_write_errors_total')).toBe(0);
      expect(metrics).toMatch(/^# TYPE shardgram_syslog_malformed_total counter$/m);
      expect(metrics).toMatch(/^shardgram_syslog_messages_total\{worker="0",format="unknown"\} \d+$/m);
      const st = (await (await fetch(`${statsUrl}/stats`)).json()) as { workers: { restarts: number; handlerErrors: number }[] };
      expect(st.workers.map((w) => w.restarts)).toEqual([0, 0]);
      expect(st.workers.map((w) => w.handlerErrors)).toEqual([0, 0]);
      expect(s.stderr()).toMatch(/malformed datagram #1: \d+ bytes from 127\.0\.0\.1:\d+, stored with its bytes: /);
    } finally {
      closeAll(clients);
    }
  });

  it('without out=: JSON lines on the standard output of the service', async () => {
    const s = await service.serve(2, {});
    // One source port per message: 40 ports all hashing to one of 2 workers has odds of 2^-39
    // (with 10 ports, 2^-9: it happened once in CI).
    const clients = await openClients(40);
    try {
      for (let i = 0; i < 40; i++) await send(clients[i]!, `<14>1 - h stdoutapp - - - stdout-${i}`, s.port);
      expect(await waitFor(() => (s.output().match(/^\{.*"stdout-\d+".*\}$/gm) ?? []).length === 40, 5_000)).toBe(true);
    } finally {
      closeAll(clients);
    }
    const lines = s
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'));
    const recs = lines.map((l) => JSON.parse(l) as SyslogRecord);
    expect(new Set(recs.map((r) => r.message)).size).toBe(40);
    expect(recs.every((r) => r.appName === 'stdoutapp' && r.severity === 'info')).toBe(true);
    expect(new Set(recs.map((r) => r.worker))).toEqual(new Set([0, 1]));
  });

  it('rejects bad app options before starting, in one line', async () => {
    const { runCli } = await import('@shardgram/test-kit/cli');
    const t = tempDir();
    const r = await runCli(
      ['serve', 'syslog', '--port', '0', '--workers', '1', '--app-option', 'keep=0', '--app-option', `out=${join(t.dir, 'keep0.jsonl')}`],
      { timeoutMs: 20_000 },
    ).finally(t.cleanup);
    // (The last line: a checkout whose sources changed may first say it is compiling them.)
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n').at(-1)).toBe('shardgram: --app-option keep must be from 1 to 1000; got 0');
    const r2 = await runCli(['serve', 'syslog', '--port', '0', '--workers', '1', '--app-option', 'out=/nonexistent-dir/x.jsonl'], { timeoutMs: 20_000 });
    expect(r2.code).toBe(2);
    expect(r2.stderr.trim().split('\n').at(-1)).toBe(
      'shardgram: --app-option out must be a file in an existing directory; got "/nonexistent-dir/x.jsonl" (directory /nonexistent-dir does not exist)',
    );
  });
});
