/**
 * The /metrics figures of what is not a metric line: DogStatsD events by alert type,
 * service checks by status, ignored fields, bad lines by reason, and the lines seen by
 * kind (metric, event, service check, bad), totals since the start, summed from each
 * flush.
 */
import type { PromWriter } from '@shardgram/udp-core/prom';
import { ALERT_TYPES, SERVICE_CHECK_STATUSES, type AlertType, type ServiceCheckStatus } from './dogstatsd.js';
import type { FlushResult } from './merge.js';
import { BAD_LINE_CODES } from './parser.js';
import { zeroBadReasons } from './tallies.js';

export class DialectTotals {
  /** Events and checks kept (in the JSON output), by alert type / status. */
  readonly events = new Map<AlertType, number>(ALERT_TYPES.map((t) => [t, 0]));
  readonly serviceChecks = new Map<ServiceCheckStatus, number>(SERVICE_CHECK_STATUSES.map((s) => [s, 0]));
  ignoredFields = 0;
  /** Non-empty lines, all kinds together (metrics_received). */
  lines = 0;
  badLines = 0;
  readonly badReasons = zeroBadReasons();
  /** Event and service check lines seen, kept or dropped by maxKeys. */
  eventLines = 0;
  serviceCheckLines = 0;

  /** Adds one flush's figures. */
  add(r: FlushResult): void {
    for (const e of r.events) this.events.set(e.alert_type, (this.events.get(e.alert_type) ?? 0) + 1);
    for (const c of r.service_checks) this.serviceChecks.set(c.status, (this.serviceChecks.get(c.status) ?? 0) + 1);
    this.ignoredFields += r.ignored_fields;
    this.lines += r.metrics_received;
    this.badLines += r.bad_lines_seen;
    for (const c of BAD_LINE_CODES) this.badReasons[c] += r.bad_lines_by_reason[c];
    this.eventLines += r.events_seen;
    this.serviceCheckLines += r.service_checks_seen;
  }

  /** Its families, into the app's /metrics. */
  write(w: PromWriter): void {
    w.family('shardgram_statsd_events_total', 'counter', 'DogStatsD events kept (in the JSON output, never in the metrics), by alert type.');
    for (const [t, n] of this.events) w.sample('shardgram_statsd_events_total', { alert_type: t }, n);
    w.family('shardgram_statsd_service_checks_total', 'counter', 'DogStatsD service checks kept, by status.');
    for (const [s, n] of this.serviceChecks) w.sample('shardgram_statsd_service_checks_total', { status: s }, n);
    w.family('shardgram_statsd_ignored_fields_total', 'counter', 'Fields of good lines that were unknown (or had an invalid value) and were ignored.');
    w.sample('shardgram_statsd_ignored_fields_total', {}, this.ignoredFields);
    w.family('shardgram_statsd_bad_lines_total', 'counter', 'Lines that were not StatsD, by reason (they add up to lines_total{kind="bad"}).');
    for (const c of BAD_LINE_CODES) w.sample('shardgram_statsd_bad_lines_total', { reason: c }, this.badReasons[c]);
    // Events and checks count as such whether kept or dropped by maxKeys (rejected_total{reason="key_limit"}).
    w.family('shardgram_statsd_lines_total', 'counter', 'Non-empty lines received, by kind: metric, event, service_check, bad.');
    w.sample('shardgram_statsd_lines_total', { kind: 'metric' }, Math.max(0, this.lines - this.badLines - this.eventLines - this.serviceCheckLines));
    w.sample('shardgram_statsd_lines_total', { kind: 'event' }, this.eventLines);
    w.sample('shardgram_statsd_lines_total', { kind: 'service_check' }, this.serviceCheckLines);
    w.sample('shardgram_statsd_lines_total', { kind: 'bad' }, this.badLines);
  }
}
