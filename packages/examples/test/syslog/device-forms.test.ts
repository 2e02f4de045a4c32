/**
 * BSD forms real devices send that a review found misread (issue 20), each held to what
 * rsyslog 8.2302 and syslog-ng 3.38 made of the exact line (run on it: imudp and a
 * network() source, their parsed fields written with a template), or, where they
 * differ, to the one docs/syslog.md ("Dialects") says shardgram follows and why.
 */
import { describe, expect, it } from 'vitest';
import { parseSyslog } from '@shardgram/examples';

const NOW = new Date(2026, 5, 1, 12, 0, 0); // 1 June 2026, local time
const p = (text: string): ReturnType<typeof parseSyslog> => parseSyslog(Buffer.from(text), NOW);
const fields = (text: string): Record<string, unknown> => {
  const r = p(text);
  return { timestamp: r.timestamp, hostname: r.hostname, appName: r.appName, procId: r.procId, message: r.message, error: r.error };
};

describe('the empty tag of `host : message` (Cisco ASA, NX-OS)', () => {
  it('ASA: the host, no app name, the message after ": " (both references)', () => {
    expect(fields('<164>Feb 13 2021 01:02:25 ASAGW-MULLE : %ASA-4-713903: IKE Initiator: unexpected setting')).toEqual({
      timestamp: '2021-02-13T01:02:25',
      hostname: 'ASAGW-MULLE',
      appName: null,
      procId: null,
      message: '%ASA-4-713903: IKE Initiator: unexpected setting',
      error: null,
    });
  });

  it("NX-OS: an RFC 3339 time, the host, no app name; the device's own time stays in the message (both references)", () => {
    expect(
      fields('<189>2021-01-01T11:09:36+02:00 host.tld : 2021 Jan  1 11:09:36.290 CET: %ETHPORT-5-IF_UP: Interface Ethernet1/1 is up in mode access'),
    ).toEqual({
      timestamp: '2021-01-01T11:09:36+02:00',
      hostname: 'host.tld',
      appName: null,
      procId: null,
      message: '2021 Jan  1 11:09:36.290 CET: %ETHPORT-5-IF_UP: Interface Ethernet1/1 is up in mode access',
      error: null,
    });
  });

  it('no space after the colon, nothing after it, no host (rsyslog)', () => {
    expect(fields('<13>Jan 15 12:00:00 host :msg')).toMatchObject({ hostname: 'host', appName: null, message: 'msg' });
    expect(fields('<13>Jan 15 12:00:00 host :')).toMatchObject({ hostname: 'host', appName: null, message: '' });
    expect(fields('<13>Jan 15 12:00:00 : msg here')).toMatchObject({ timestamp: '2026-01-15T12:00:00', hostname: null, appName: null, message: 'msg here' });
  });
});

describe('a zone name after a Cisco time', () => {
  it('UTC is kept as the offset Z', () => {
    expect(fields('<189>643: router1: *Jan  8 19:46:03.295 UTC: %LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to up')).toEqual({
      timestamp: '2026-01-08T19:46:03.295Z',
      hostname: 'router1',
      appName: '%LINK-3-UPDOWN',
      procId: null,
      message: 'Interface GigabitEthernet0/1, changed state to up',
      error: null,
    });
    expect(p('<189>*Mar  1 18:48:50.483 GMT: %SYS-5-CONFIG_I: x').timestamp).toBe('2026-03-01T18:48:50.483Z');
  });

  it('a zone of one offset gets that offset', () => {
    expect(p('<189>643: *Jan  8 19:46:03.295 CET: %LINK-3-UPDOWN: up').timestamp).toBe('2026-01-08T19:46:03.295+01:00');
    expect(p('<189>*Jan  8 19:46:03 EDT: %LINK-3-UPDOWN: up').timestamp).toBe('2026-01-08T19:46:03-04:00');
  });

  it('a name of several zones (CST, IST, BST) stays in the message, never dropped', () => {
    expect(fields('<189>*Jan  8 19:46:03.295 CST: %LINK-3-UPDOWN: up')).toEqual({
      timestamp: '2026-01-08T19:46:03.295',
      hostname: null,
      appName: null,
      procId: null,
      message: 'CST: %LINK-3-UPDOWN: up',
      error: null,
    });
    expect(fields('<189>643: router1: *Jan  8 19:46:03 IST: %LINK-3-UPDOWN: up')).toMatchObject({
      timestamp: '2026-01-08T19:46:03',
      hostname: 'router1',
      appName: null,
      message: 'IST: %LINK-3-UPDOWN: up',
    });
  });
});

describe('the host and time checks', () => {
  it('a time after the time is not a host, nor a program: it stays in the message', () => {
    expect(fields('<13>Jan 15 12:00:00 12:00:01 x')).toEqual({
      timestamp: '2026-01-15T12:00:00',
      hostname: null,
      appName: null,
      procId: null,
      message: '12:00:01 x',
      error: null,
    });
    expect(fields('<13>Jan 15 12:00:00 12:00:01 app: x')).toMatchObject({ hostname: null, appName: null, message: '12:00:01 app: x' });
    // IPv6 hosts still are.
    expect(fields('<13>Jan 15 12:00:00 2001:db8::1 app: x')).toMatchObject({ hostname: '2001:db8::1', appName: 'app', message: 'x' });
  });

  it('a date that does not exist is not a timestamp: the whole line is the message', () => {
    for (const line of ['<13>Feb 30 12:00:00 host x', '<13>Apr 31 12:00:00 host x', '<13>Feb 29 12:00:00 host x', '<13>2021-02-30T12:00:00Z host app: x']) {
      expect(fields(line), line).toEqual({ timestamp: null, hostname: null, appName: null, procId: null, message: line.slice(4), error: null });
    }
    // 29 February of a leap year is a date.
    expect(p('<13>Feb 29 2024 12:00:00 host x')).toMatchObject({ timestamp: '2024-02-29T12:00:00', hostname: 'host' });
    expect(p('<13>2024-02-29T12:00:00Z host app: x')).toMatchObject({ timestamp: '2024-02-29T12:00:00Z', hostname: 'host' });
  });

  it('a BSD time with more than 9 fraction digits keeps them all (as an RFC 3339 one)', () => {
    expect(fields('<13>Jan 15 12:00:00.1234567890 host app: x')).toEqual({
      timestamp: '2026-01-15T12:00:00.1234567890',
      hostname: 'host',
      appName: 'app',
      procId: null,
      message: 'x',
      error: null,
    });
    expect(p('<13>Jan 15 12:00:00.123456789012345678901234567890 host app: x')).toMatchObject({
      timestamp: '2026-01-15T12:00:00.123456789012345678901234567890',
      hostname: 'host',
    });
  });
});
