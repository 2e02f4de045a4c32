/**
 * A real relay in front of `shardgram serve syslog`: util-linux `logger` writes to a
 * real rsyslogd (started in the foreground from a config this test writes, listening
 * on a Unix socket in a temp dir), which forwards over UDP to the service in its
 * three stock formats: RFC 5424 (RSYSLOG_SyslogProtocol23Format), BSD with an RFC 3339
 * time (RSYSLOG_ForwardFormat) and BSD with a BSD time
 * (RSYSLOG_TraditionalForwardFormat), and in a template shaped like network gear
 * writes (a space after the PRI, the year after the time). Every message arrives, in
 * every format, with the fields its sender set. rsyslogd is stopped by its pid.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import type { SyslogRecord } from '@shardgram/examples';
import { startServe, type Serving } from '@shardgram/test-kit/cli';
import { waitFor } from '@shardgram/test-kit/wait';
import { countLines, haveCommand, readRecords, tempDir } from './helpers.js';

const run = promisify(execFile);
const RSYSLOGD = ['/usr/sbin/rsyslogd', '/sbin/rsyslogd'].find((p) => existsSync(p));
const canRun = RSYSLOGD !== undefined && haveCommand('logger');
if (!canRun) {
  const missing: string[] = [];
  if (RSYSLOGD === undefined) missing.push('rsyslogd (Debian package rsyslog)');
  if (!haveCommand('logger')) missing.push('logger (Debian package bsdutils)');
  console.log(`syslog relay test: ${missing.join(' and ')} not found; skipped`);
}

let serving: Serving | undefined;
let relay: ChildProcess | undefined;
let cleanup: (() => void) | undefined;
afterEach(async () => {
  if (relay && relay.exitCode === null && relay.signalCode === null) {
    relay.kill('SIGTERM');
    await once(relay, 'exit');
  }
  relay = undefined;
  await serving?.stop('SIGTERM');
  serving = undefined;
  cleanup?.();
  cleanup = undefined;
});

function rsyslogConfig(dir: string, socket: string, port: number): string {
  const fwd = (template: string): string => `action(type="omfwd" target="127.0.0.1" port="${port}" protocol="udp" template="${template}")`;
  return [
    `global(workDirectory="${dir}")`,
    'module(load="imuxsock" SysSock.Use="off")',
    // Network gear: `<PRI> Mmm dd hh:mm:ss YYYY host tag: msg`.
    'template(name="Gear" type="string" string="<%PRI%> %TIMESTAMP% %$YEAR% %HOSTNAME% %syslogtag:1:32%%msg:::sp-if-no-1st-sp%%msg%")',
    // The regular parser chain (RFC 5424, then BSD), as for a network input.
    `input(type="imuxsock" Socket="${socket}" RateLimit.Interval="0" UseSpecialParser="off" ParseHostname="on")`,
    'if $protocol-version == 1 then {',
    `  ${fwd('RSYSLOG_SyslogProtocol23Format')}`,
    '} else {',
    `  ${fwd('RSYSLOG_SyslogProtocol23Format')}`,
    `  ${fwd('RSYSLOG_ForwardFormat')}`,
    `  ${fwd('RSYSLOG_TraditionalForwardFormat')}`,
    `  ${fwd('Gear')}`,
    '}',
    '',
  ].join('\n');
}

const marker = (r: SyslogRecord): string => (r.message ?? '').trimStart().split(' ')[0] ?? '';

describe('logger → rsyslogd → UDP → shardgram serve syslog', () => {
  it.skipIf(!canRun)(
    "every message, in each of rsyslog's forwarding formats, with the fields its sender set",
    async () => {
      const t = tempDir();
      cleanup = t.cleanup;
      const out = join(t.dir, 'syslog.jsonl');
      serving = await startServe(['syslog', '--port', '0', '--workers', '2', '--app-option', `out=${out}`], 2);
      const socket = join(t.dir, 'log.sock');
      const conf = join(t.dir, 'rsyslog.conf');
      writeFileSync(conf, rsyslogConfig(t.dir, socket, serving.port));
      relay = spawn(RSYSLOGD!, ['-n', '-f', conf, '-i', join(t.dir, 'rsyslogd.pid')], { stdio: ['ignore', 'pipe', 'pipe'] });
      let relayLog = '';
      relay.stdout!.on('data', (d: Buffer) => (relayLog += d.toString()));
      relay.stderr!.on('data', (d: Buffer) => (relayLog += d.toString()));
      expect(await waitFor(() => existsSync(socket), 10_000), `rsyslogd did not create its socket: ${relayLog}`).toBe(true);

      const shortHost = hostname().split('.')[0]!;
      const sent = [
        {
          m: 'R3164-1',
          args: ['--rfc3164', '-t', 'web', '--id=4242', '-p', 'local3.warning'],
          text: 'R3164-1 hello world',
          app: 'web',
          pid: '4242',
          fac: 'local3',
          sev: 'warning',
          host: shortHost,
        },
        {
          m: 'R3164-2',
          args: ['--rfc3164', '-t', 'CRON', '-p', 'cron.info'],
          text: 'R3164-2 job: done [ok]',
          app: 'CRON',
          pid: null,
          fac: 'cron',
          sev: 'info',
          host: shortHost,
        },
        {
          m: 'R5424-1',
          args: ['--rfc5424', '-t', 'api', '--id=77', '--msgid', 'REQ', '-p', 'user.err', '--sd-id', 'zoo@123', '--sd-param', 'tiger="hungry"'],
          text: 'R5424-1 five four',
          app: 'api',
          pid: '77',
          fac: 'user',
          sev: 'err',
          host: hostname(),
          msgId: 'REQ',
        },
        {
          m: 'R5424-2',
          args: ['--rfc5424', '-t', 'uni', '-p', 'daemon.notice'],
          text: 'R5424-2 größe ✓',
          app: 'uni',
          pid: null,
          fac: 'daemon',
          sev: 'notice',
          host: hostname(),
          msgId: null,
        },
      ];
      for (const s of sent) await run('logger', ['-u', socket, ...s.args, s.text]);
      const expected = sent.reduce((n, s) => n + (s.m.startsWith('R3164') ? 4 : 1), 0);
      const ours = (): SyslogRecord[] => readRecords(out).filter((r) => /^R(3164|5424)-\d$/.test(marker(r)));
      expect(
        await waitFor(() => countLines(out) >= expected && ours().length >= expected, 15_000, 50),
        `${relayLog}\n${JSON.stringify(readRecords(out), null, 1)}`,
      ).toBe(true);

      const records = ours();
      expect(records).toHaveLength(expected);
      for (const s of sent) {
        const got = records.filter((r) => marker(r) === s.m);
        expect(got, s.m).toHaveLength(s.m.startsWith('R3164') ? 4 : 1);
        for (const r of got) {
          const where = `${s.m}: ${JSON.stringify(r)}`;
          expect(r.error, where).toBeNull();
          expect(r.facility, where).toBe(s.fac);
          expect(r.severity, where).toBe(s.sev);
          expect(r.hostname, where).toBe(s.host);
          expect(r.appName, where).toBe(s.app);
          expect(r.procId, where).toBe(s.pid);
          // rsyslog's msg property keeps the space that followed the tag's colon.
          expect(r.message?.trimStart(), where).toBe(s.text);
          expect(r.timestamp, where).not.toBeNull();
        }
        const formats = got.map((r) =>
          r.format === 'rfc5424' ? '5424' : /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+[+-]\d\d:\d\d$/.test(r.timestamp!) ? 'bsd-rfc3339' : 'bsd',
        );
        expect(formats.sort(), s.m).toEqual(s.m.startsWith('R3164') ? ['5424', 'bsd', 'bsd', 'bsd-rfc3339'] : ['5424']);
        // The BSD times carry this year, whether inferred or sent after the time.
        for (const r of got.filter((x) => x.format === 'rfc3164')) expect(r.timestamp!.slice(0, 4), s.m).toBe(String(new Date().getFullYear()));
        const r5424 = got.find((r) => r.format === 'rfc5424')!;
        expect(r5424.version).toBe(1);
        if ('msgId' in s) expect(r5424.msgId, s.m).toBe(s.msgId);
        if (s.m === 'R5424-1') expect(r5424.structuredData).toMatchObject({ 'zoo@123': { tiger: 'hungry' } });
      }
    },
    40_000,
  );
});
