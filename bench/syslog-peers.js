// The syslog bench's peers (bench/syslog.js): rsyslog and syslog-ng, found on this
// host (or syslog-ng unpacked by bench/setup.sh into bench/out/syslog-ng, since Debian's
// syslog-ng-core and rsyslog packages exclude each other), each started in the
// foreground from a config written into the bench's temporary directory, with its own
// pid, state and output files, and stopped by pid. Missing: { missing: reason }.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH, SETUP_HINT, which } from './lib.js';

/** SO_RCVBUF the peers ask for (shardgram's syslog app declares the same). */
export const RCVBUF = 4 * 1024 * 1024;
/** Worker processes of shardgram, imudp threads of rsyslog, sources of syslog-ng. */
export const WORKERS = 2;
/** syslog-ng unpacked by bench/setup.sh (its Debian package would remove rsyslog's). */
const SYSLOG_NG_ROOT = join(BENCH, 'out', 'syslog-ng');

function waitForExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

function foreground(bin, argv, env) {
  const child = spawn(bin, argv, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  return {
    child,
    stderr: () => stderr,
    stop: async () => {
      child.kill('SIGTERM');
      await waitForExit(child, 5000);
    },
  };
}

export function findRsyslog() {
  const bin = which('rsyslogd') ?? (existsSync('/usr/sbin/rsyslogd') ? '/usr/sbin/rsyslogd' : undefined);
  if (!bin) return { missing: `rsyslogd is not installed (${SETUP_HINT})` };
  const v = /rsyslogd\s+([\d.]+)/.exec(execFileSync(bin, ['-v'], { encoding: 'utf8' }))?.[1];
  return { bin, version: v ? `rsyslog ${v}` : 'rsyslog' };
}

export async function startRsyslog(peer, dir, port) {
  const work = join(dir, 'rsyslog-work');
  mkdirSync(work, { recursive: true });
  const out = join(dir, 'rsyslog.jsonl');
  const conf = join(dir, 'rsyslog.conf');
  // Only imudp is loaded: no imuxsock (/dev/log), no imklog; own pid file and work directory.
  writeFileSync(
    conf,
    [
      `global(workDirectory="${work}" net.enableDNS="off" maxMessageSize="8k")`,
      `module(load="imudp" threads="${WORKERS}")`,
      `input(type="imudp" address="127.0.0.1" port="${port}" rcvbufSize="${RCVBUF}")`,
      'template(name="bench" type="string" string="%jsonmesg%\\n")',
      'if ($msg contains "sgbench-") then {',
      `  action(type="omfile" file="${out}" template="bench")`,
      '}',
      '',
    ].join('\n'),
  );
  execFileSync(peer.bin, ['-N1', '-f', conf], { stdio: 'ignore' });
  return { ...foreground(peer.bin, ['-n', '-f', conf, '-i', join(dir, 'rsyslogd.pid')]), out };
}

/** syslog-ng: on PATH (the Debian package), or unpacked into bench/out/syslog-ng by bench/setup.sh. */
export function findSyslogNg() {
  const system = which('syslog-ng') ?? (existsSync('/usr/sbin/syslog-ng') ? '/usr/sbin/syslog-ng' : undefined);
  let bin = system;
  let env = {};
  let modules;
  if (!bin) {
    const local = join(SYSLOG_NG_ROOT, 'usr', 'sbin', 'syslog-ng');
    if (!existsSync(local)) return { missing: `syslog-ng is not installed (${SETUP_HINT}, into bench/out/syslog-ng)` };
    bin = local;
    env = { LD_LIBRARY_PATH: join(SYSLOG_NG_ROOT, 'usr', 'lib', 'syslog-ng') };
    const base = join(SYSLOG_NG_ROOT, 'usr', 'lib', 'syslog-ng');
    const ver = readdirSync(base).find((d) => /^\d+\.\d+$/.test(d));
    if (ver) modules = join(base, ver);
  }
  let text;
  try {
    text = execFileSync(bin, ['--version'], { encoding: 'utf8', env: { ...process.env, ...env } });
  } catch (err) {
    return { missing: `${bin} does not run: ${String(err.stderr ?? err.message).split('\n')[0]} (${SETUP_HINT})` };
  }
  const v = /syslog-ng \d+ \(([\d.]+)\)/.exec(text)?.[1];
  return { bin, env, modules, version: v ? `syslog-ng ${v}` : 'syslog-ng', configVersion: v ? v.split('.').slice(0, 2).join('.') : '3.38' };
}

export async function startSyslogNg(peer, dir, port) {
  const out = join(dir, 'syslog-ng.jsonl');
  const conf = join(dir, 'syslog-ng.conf');
  // One network() source per shardgram worker, each its own SO_REUSEPORT socket; RFC 5424
  // parsing (flags(syslog-protocol)); no DNS, no statistics lines; JSON lines to a file.
  const sources = Array.from(
    { length: WORKERS },
    (_, i) => `  network(ip("127.0.0.1") port(${port}) transport(udp) so-reuseport(1) so-rcvbuf(${RCVBUF}) flags(syslog-protocol) persist-name("bench${i}"));`,
  );
  writeFileSync(
    conf,
    [
      `@version: ${peer.configVersion}`,
      'options { use-dns(no); dns-cache(no); stats-freq(0); };',
      'source s_bench {',
      ...sources,
      '};',
      `destination d_bench { file("${out}" template("$(format-json --scope rfc5424 --scope sdata)\\n")); };`,
      'log { source(s_bench); destination(d_bench); };',
      '',
    ].join('\n'),
  );
  const argv = ['-F', '--no-caps', '-f', conf, '-p', join(dir, 'syslog-ng.pid'), '-R', join(dir, 'syslog-ng.persist'), '-c', join(dir, 'syslog-ng.ctl')];
  if (peer.modules) argv.push(`--module-path=${peer.modules}`);
  execFileSync(peer.bin, ['-s', ...argv.slice(1)], { stdio: 'ignore', env: { ...process.env, ...peer.env } });
  return { ...foreground(peer.bin, argv, peer.env), out };
}
