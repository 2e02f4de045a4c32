/** `shardgram top`: a live terminal view of a running service, from its GET /stats. */
import { get as httpGet } from 'node:http';
import { ShardgramError, describeError } from '../errors.js';
import { escapeText } from '../app/escape-text.js';
import { UsageError, intOption, parseFlags } from './args.js';
import { HELP_FLAG, usageOf, type FlagTable } from './flags.js';
import { line, screen, type Reading, type StatsView } from './top-view.js';
import { fmt } from './run-service.js';
import { DEFAULTS, LIMITS, TOP_DEFAULTS, TOP_LIMITS } from '../defaults.js';

const INTERVAL = TOP_LIMITS.intervalMs;
const REFRESHES = TOP_LIMITS.count;

export const TOP_FLAGS: FlagTable = {
  'stats-port': { short: 's', value: 'S', help: `the service's --stats-port, on ${DEFAULTS.statsAddress}` },
  'stats-url': { short: 'u', value: 'URL', help: "the service's stats URL instead (e.g. http://[::1]:9100)" },
  interval: { short: 'i', value: 'MS', help: `refresh every MS milliseconds, ${INTERVAL.min}-${INTERVAL.max} (default ${TOP_DEFAULTS.intervalMs})` },
  count: { short: 'n', value: 'N', help: `quit after N refreshes, ${REFRESHES.min}-${REFRESHES.max} (default: run until q or Ctrl-C)` },
  help: HELP_FLAG,
};

export const TOP_USAGE = usageOf(
  `Usage: shardgram top --stats-port S [options]
       shardgram top --stats-url URL [options]

A live view of a running \`shardgram serve … --stats-port S\`, like htop for the
group: one row per worker (pid, state, share of all datagrams, datagrams/s over
the last interval, receive queue, kernel drops, restarts), the fairness of the
split and the top senders. On a terminal it redraws in place (alternate screen,
restored on exit); otherwise it prints one line per refresh. q or Ctrl-C quits.
`,
  TOP_FLAGS,
);

/** The /stats URL from --stats-port or --stats-url. */
function statsUrl(values: Record<string, unknown>, u: string): string {
  if (values['stats-port'] !== undefined && values['stats-url'] !== undefined) throw new UsageError('give --stats-port or --stats-url, not both', u);
  if (values['stats-port'] !== undefined) return `http://${fmt(DEFAULTS.statsAddress, intOption(values, 'stats-port', 1, LIMITS.port.max, u)!)}/stats`;
  if (values['stats-url'] === undefined) throw new UsageError('--stats-port or --stats-url is required', u);
  let url: URL;
  try {
    url = new URL(String(values['stats-url']));
  } catch {
    throw new UsageError(`--stats-url must be an http:// URL; got "${String(values['stats-url'])}"`, u);
  }
  if (url.protocol !== 'http:') throw new UsageError(`--stats-url must be an http:// URL; got "${String(values['stats-url'])}"`, u);
  if (!url.pathname.endsWith('/stats')) url.pathname = `${url.pathname.replace(/\/$/, '')}/stats`;
  return url.href;
}

/** GET over a connection of its own (no pool: nothing is left open to hold the process when it quits). */
function get(url: string, timeoutMs: number, cancel?: AbortSignal): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: false, timeout: timeoutMs, signal: cancel, headers: { accept: 'application/json' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
  });
}

async function read(url: string, timeoutMs: number, cancel?: AbortSignal): Promise<Reading> {
  let res: { status: number; body: string };
  try {
    res = await get(url, timeoutMs, cancel);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ETIMEDOUT' ? `no answer within ${timeoutMs} ms` : 'nothing answers there';
    throw new ShardgramError('ERR_SHARDGRAM_UNREACHABLE', `cannot read ${url}: ${why}; is the service running with that --stats-port?`);
  }
  if (res.status !== 200)
    throw new ShardgramError('ERR_SHARDGRAM_UNREACHABLE', `cannot read ${url}: HTTP ${res.status} ${escapeText(res.body.split('\n')[0]!.slice(0, 200))}`);
  let body: StatsView | undefined;
  try {
    // Every string of the answer (an app name, a sender, an advice…) is shown escaped:
    // whoever answers at that URL does not get to write escape sequences to this terminal.
    body = JSON.parse(res.body, (_key, value: unknown) => (typeof value === 'string' ? escapeText(value) : value)) as StatsView;
  } catch {
    body = undefined;
  }
  if (!body || !Array.isArray(body.workers) || typeof body.service !== 'object') {
    throw new ShardgramError('ERR_SHARDGRAM_UNREACHABLE', `${url} does not answer like a shardgram stats endpoint`);
  }
  return { at: Date.now(), stats: body };
}

export async function top(argv: string[]): Promise<number> {
  const u = TOP_USAGE;
  const values = parseFlags(argv, TOP_FLAGS, u);
  if (!values) return 0;
  const url = statsUrl(values, u);
  const intervalMs = intOption(values, 'interval', INTERVAL.min, INTERVAL.max, u, TOP_DEFAULTS.intervalMs)!;
  const count = intOption(values, 'count', REFRESHES.min, REFRESHES.max, u);
  const timeoutMs = Math.max(TOP_DEFAULTS.readTimeoutMs, intervalMs);
  const out = process.stdout;
  const tty = Boolean(out.isTTY);

  // The first reading decides whether there is anything to show: a plain error otherwise.
  let cur = await read(url, timeoutMs);
  let prev: Reading | undefined;
  let refreshes = 0;

  return await new Promise<number>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    let finished = false;
    // Quitting cancels a reading in flight, so that the process exits at once.
    const cancel = new AbortController();
    const stdin = process.stdin;
    const draw = (): void => {
      if (tty) {
        const lines = screen(prev, cur, { columns: out.columns || 100, rows: out.rows || 30, url, intervalMs });
        out.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\n')}\x1b[J`);
      } else {
        out.write(`${line(prev, cur)}\n`);
      }
    };
    const finish = (code: number, error?: string): void => {
      if (finished) return;
      finished = true;
      if (timer) clearTimeout(timer);
      cancel.abort();
      process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
      out.off('resize', draw);
      if (stdin.isTTY) stdin.setRawMode(false);
      stdin.off('data', onKey);
      stdin.pause();
      if (tty) out.write('\x1b[?25h\x1b[?1049l');
      if (error) process.stderr.write(`shardgram: ${escapeText(error)}\n`);
      resolve(code);
    };
    const onSignal = (): void => finish(0);
    const onKey = (data: Buffer): void => {
      const text = data.toString('latin1');
      if (text.includes('q') || text.includes('Q') || text.includes('\x03')) finish(0);
    };
    const tick = (): void => {
      refreshes++;
      draw();
      if (count !== undefined && refreshes >= count) {
        finish(0);
        return;
      }
      timer = setTimeout(() => {
        read(url, timeoutMs, cancel.signal).then(
          (r) => {
            if (finished) return;
            prev = cur;
            cur = r;
            tick();
          },
          (err: unknown) => finish(1, describeError(err)),
        );
      }, intervalMs);
    };
    process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
    if (stdin.isTTY) stdin.setRawMode(true);
    stdin.on('data', onKey);
    if (tty) {
      out.write('\x1b[?1049h\x1b[?25l');
      out.on('resize', draw);
    }
    tick();
  });
}
