/**
 * What `shardgram serve syslog` runs with when no flag says otherwise (the app's
 * declared defaults: native engine, 4 MiB receive buffers, 50 ms read delay), and the
 * dgram engine still writing every message once (one read batch per datagram there).
 */
import { describe, expect, it } from 'vitest';
import { rmemMax } from '@shardgram/test-kit/rcvbuf';
import { join } from 'node:path';
import { closeAll, openClients, send } from '@shardgram/test-kit/udp';
import { waitFor } from '@shardgram/test-kit/wait';
import { recordsWhen, syslogPerTest } from './helpers.js';

const service = syslogPerTest();

describe('syslog: defaults', () => {
  it("`serve syslog` with no engine, buffer or delay flag runs the app's defaults: native engine, 4 MiB asked, reads wait up to 50 ms", async () => {
    const dir = service.dir();
    const s = await service.serve(2, { out: join(dir, 'd.jsonl') }, ['--stats-port', '0']);
    expect(s.stderr()).toMatch(/with 2 workers \(native engine, reads wait up to 50 ms,/);
    const stats = (await (await fetch(`${s.stats}/stats`)).json()) as { service: { engine: string }; workers: { engine: string; rcvbuf: number }[] };
    expect(stats.service.engine).toBe('native');
    // The kernel doubles what is asked, up to net.core.rmem_max (no SO_RCVBUFFORCE unless asked): at least that much.
    for (const w of stats.workers) {
      expect(w.engine).toBe('native');
      expect(w.rcvbuf).toBeGreaterThanOrEqual(2 * Math.min(4 * 1024 * 1024, rmemMax()));
    }
  });
});

describe('syslog: the dgram engine (one batch per datagram)', () => {
  it('--engine dgram: every message once, each a whole line, all counted written', async () => {
    const dir = service.dir();
    const out = join(dir, 'dg.jsonl');
    const s = await service.serve(2, { out }, ['--engine', 'dgram', '--stats-port', '0']);
    const clients = await openClients(8);
    const n = 300;
    try {
      for (let i = 0; i < n; i++) await send(clients[i % clients.length]!, `<13>1 - h app - - - dg-${i}`, s.port);
    } finally {
      closeAll(clients);
    }
    const records = await recordsWhen(out, n);
    expect(records.map((r) => r.message).sort()).toEqual(Array.from({ length: n }, (_, i) => `dg-${i}`).sort());
    expect(
      await waitFor(async () => {
        const text = await (await fetch(`${s.stats!}/metrics`)).text();
        return [...text.matchAll(/^shardgram_syslog_written_total\{[^}]*\} (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0) === n;
      }, 5_000),
    ).toBe(true);
  });
});
