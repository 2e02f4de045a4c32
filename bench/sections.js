// The sections of `npm run bench` past the receive rows (bench/run.js): each runs its
// own script and returns a markdown section for docs/benchmarks.md; a section that
// cannot run says why in its place instead.

/** The receiver sections of other apps: each returns a markdown section. */
export async function runAppSections({ sections, quick, log, elapsed }) {
  const out = [];
  if (sections.includes('statsd')) {
    log(`${elapsed()}  statsd section: Etsy statsd 0.9.0 vs shardgram statsd …`);
    const { QUICK, runStatsdBench, runStatsdColdBurst, runStatsdPerDatagram } = await import('./statsd.js');
    try {
      out.push((await runStatsdBench({ log, ...(quick ? QUICK : {}) })).markdown);
      out.push((await runStatsdColdBurst({ log, ...(quick ? QUICK : {}) })).markdown);
    } catch (err) {
      out.push(`## StatsD\n\nThe statsd section did not run: ${err.message}\n`);
    }
    log(`${elapsed()}  statsd section: CPU per datagram against the C recvmmsg floor …`);
    try {
      const pd = await runStatsdPerDatagram({ log, ...(quick ? { ...QUICK, warmup: 5000 } : {}) });
      out.push(pd.markdown);
      const sg = pd.rows.find((r) => r.key === 'statsd');
      if (sg)
        log(
          `${elapsed()}  shardgram statsd: ${sg.us.toFixed(3)} µs CPU/datagram, ${sg.xFloor === undefined ? 'no C floor' : `${sg.xFloor.toFixed(2)} × the C recvmmsg floor`} (same run)`,
        );
    } catch (err) {
      out.push(`## StatsD: CPU per datagram against the C floor\n\nThis section did not run: ${err.message}\n`);
    }
  }
  if (sections.includes('timers')) {
    log(`${elapsed()}  timers section: statsd timers, exact values vs native histograms …`);
    const { QUICK: TQUICK, runTimerBench } = await import('./statsd-timers.js');
    try {
      out.push((await runTimerBench({ log, ...(quick ? TQUICK : {}) })).markdown);
    } catch (err) {
      out.push(`## StatsD timers\n\nThe timers section did not run: ${err.message}\n`);
    }
  }
  if (sections.includes('remotewrite')) {
    log(`${elapsed()}  remotewrite section: statsd's Prometheus remote write into a real Prometheus …`);
    const { QUICK: RQUICK, runRemoteWriteBench } = await import('./statsd-remote-write.js');
    try {
      out.push((await runRemoteWriteBench({ log, ...(quick ? RQUICK : {}) })).markdown);
    } catch (err) {
      out.push(`## StatsD: Prometheus remote write\n\nThe remotewrite section did not run: ${err.message}\n`);
    }
  }
  if (sections.includes('changes')) {
    log(`${elapsed()}  changes section: takeover, reload, shrink/grow under load …`);
    const { runChangesBench } = await import('./changes.js');
    try {
      out.push((await runChangesBench({ log, quick: quick })).markdown);
    } catch (err) {
      out.push(`## Changes under load\n\nThe changes section did not run: ${err.message}\n`);
    }
  }
  if (sections.includes('sealed')) {
    log(`${elapsed()}  sealed section: a group that once had a sealed member, fresh vs marked …`);
    const { runSealedBench } = await import('./sealed-member.js');
    try {
      out.push((await runSealedBench({ log, quick: quick })).markdown);
    } catch (err) {
      out.push(`## A group that once had a sealed member\n\nThe sealed section did not run: ${err.message}\n`);
    }
  }
  if (sections.includes('syslog')) {
    log(`${elapsed()}  syslog section: rsyslog and syslog-ng vs shardgram syslog, paced steps …`);
    const { runSyslogBench } = await import('./syslog.js');
    try {
      const sl = await runSyslogBench({ log, quick: quick });
      out.push(`## Syslog: rsyslog, syslog-ng and shardgram syslog, the same paced steps\n\n${sl.markdown}`);
      for (const t of sl.targets) log(`${elapsed()}  syslog target ${t.what}: ${t.detail} → ${t.met ? 'met' : 'MISSED'}`);
    } catch (err) {
      out.push(`## Syslog\n\nThe syslog section did not run: ${err.message}\n`);
    }
  }
  return out;
}
