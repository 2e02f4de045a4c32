/**
 * What `shardgram top` draws, from two successive GET /stats readings: pure
 * functions from data to lines, so they are tested without a terminal.
 */
import { bar, pct } from './render.js';

/** The parts of a /stats report that `top` reads (older services may lack the optional ones). */
export interface TopSenderView {
  sender: string;
  count: number;
  error: number;
}
export interface TopSendersView {
  total: number;
  errorBound: number;
  senders: TopSenderView[];
}
export interface WorkerView {
  index: number;
  pid: number;
  state: string;
  engine: string;
  datagrams: number;
  kernelDrops: number;
  queueBytes: number;
  restarts: number;
  share: number;
  topSenders?: TopSendersView;
}
export interface StatsView {
  service: { app: string; engine: string; address: string; port: number; family: string; workers: number; uptimeSeconds: number };
  workers: WorkerView[];
  policy?: { name: string };
  imbalance?: { detected: boolean; worker?: number; share?: number; advice?: string; message?: string };
  total: { datagrams: number; kernelDrops: number; restarts: number; queueBytes: number; stalls?: number };
  fairness: { jain: number; minShare: number; maxShare: number };
  topSenders?: TopSendersView;
}

export interface Reading {
  at: number;
  stats: StatsView;
}

/** Datagrams per second of each worker (by index) and of the service between two readings. */
export function rates(prev: Reading | undefined, cur: Reading): { workers: Map<number, number>; total: number; drops: number } {
  const workers = new Map<number, number>();
  const dt = prev ? (cur.at - prev.at) / 1000 : 0;
  if (!prev || dt <= 0) return { workers, total: 0, drops: 0 };
  for (const w of cur.stats.workers) {
    const p = prev.stats.workers.find((x) => x.index === w.index && x.pid === w.pid);
    if (p) workers.set(w.index, Math.max(0, (w.datagrams - p.datagrams) / dt));
  }
  return {
    workers,
    total: Math.max(0, (cur.stats.total.datagrams - prev.stats.total.datagrams) / dt),
    drops: Math.max(0, (cur.stats.total.kernelDrops - prev.stats.total.kernelDrops) / dt),
  };
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

function uptime(s: number): string {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
}

/** The imbalance line of a report, if one worker holds too much. */
export function imbalanceText(s: StatsView): string | undefined {
  const im = s.imbalance;
  if (!im?.detected) return undefined;
  return im.message ?? `worker ${im.worker} holds ${pct(im.share ?? 0, 0)}${im.advice ? `; ${im.advice}` : ''}`;
}

/** The full-screen view, clipped to `columns` × `rows`. */
export function screen(prev: Reading | undefined, cur: Reading, opts: { columns: number; rows: number; url: string; intervalMs: number }): string[] {
  const s = cur.stats;
  const r = rates(prev, cur);
  const svc = s.service;
  const where = svc.family === 'udp6' ? `[${svc.address}]:${svc.port}` : `${svc.address}:${svc.port}`;
  const out: string[] = [];
  out.push(
    `shardgram top · ${svc.app} on ${where} · engine ${svc.engine} · policy ${s.policy?.name ?? 'hash'} · up ${uptime(svc.uptimeSeconds)} · ${s.workers.length} workers`,
  );
  out.push(
    `${int(r.total)} datagrams/s · total ${int(s.total.datagrams)} · fairness jain ${s.fairness.jain.toFixed(3)}, ` +
      `min ${pct(s.fairness.minShare)}, max ${pct(s.fairness.maxShare)} · drops ${int(s.total.kernelDrops)} (${int(r.drops)}/s) · restarts ${s.total.restarts}${s.total.stalls ? ` · stalls ${s.total.stalls}` : ''}`,
  );
  const warn = imbalanceText(s);
  out.push(warn ? `! ${warn}` : '');
  const barWidth = Math.max(10, Math.min(40, opts.columns - 78));
  out.push(
    `${'#'.padStart(3)}  ${'PID'.padEnd(8)}${'STATE'.padEnd(10)}${'SHARE'.padEnd(barWidth + 8)}${'DGRAM/S'.padStart(11)}${'QUEUE'.padStart(11)}${'DROPS'.padStart(10)}${'RESTARTS'.padStart(10)}`,
  );
  for (const w of s.workers) {
    const rate = r.workers.get(w.index);
    out.push(
      `${String(w.index).padStart(3)}  ${String(w.pid).padEnd(8)}${w.state.padEnd(10)}${bar(w.share, barWidth)} ${pct(w.share).padStart(6)} ` +
        `${(rate === undefined ? '-' : int(rate)).padStart(11)}${bytes(w.queueBytes).padStart(11)}${int(w.kernelDrops).padStart(10)}${String(w.restarts).padStart(10)}`,
    );
  }
  const top = s.topSenders;
  if (top?.senders.length) {
    out.push('');
    const bound = top.errorBound > 0 ? `counts may be high by at most ${int(top.errorBound)}` : 'exact counts';
    out.push(`TOP SENDERS (of ${int(top.total)} datagrams; ${bound})`);
    const owner = (sender: string): string => {
      const ws = s.workers.filter((w) => w.topSenders?.senders.some((x) => x.sender === sender)).map((w) => w.index);
      return ws.length ? `worker ${ws.join(',')}` : '';
    };
    const room = Math.max(0, opts.rows - out.length - 2);
    for (const t of top.senders.slice(0, room)) {
      out.push(`  ${t.sender.padEnd(42)}${int(t.count).padStart(14)}  ${pct(top.total > 0 ? t.count / top.total : 0).padStart(6)}  ${owner(t.sender)}`);
    }
  }
  out.push('');
  out.push(`q quits · every ${(opts.intervalMs / 1000).toFixed(1)} s from ${opts.url}`);
  return out.slice(0, Math.max(1, opts.rows)).map((l) => clip(l, opts.columns));
}

/** One line per refresh, for a pipe or a log. */
export function line(prev: Reading | undefined, cur: Reading): string {
  const s = cur.stats;
  const r = rates(prev, cur);
  const time = new Date(cur.at).toISOString().slice(11, 19);
  const workers = s.workers.map((w) => `${w.index}:${w.pid}:${w.state}:${pct(w.share, 0)}`).join(' ');
  const top = s.topSenders?.senders[0];
  const topText = top && s.topSenders!.total > 0 ? ` top ${top.sender} ${pct(top.count / s.topSenders!.total, 0)}` : '';
  const warn = imbalanceText(s);
  return `${time} ${int(r.total)} dgram/s jain ${s.fairness.jain.toFixed(3)} drops ${int(s.total.kernelDrops)} workers ${workers}${topText}${warn ? ` ! ${warn}` : ''}`;
}

/** Cuts a line to `columns` characters (the bars are one column per character). */
function clip(text: string, columns: number): string {
  return text.length > columns ? text.slice(0, Math.max(0, columns)) : text;
}
