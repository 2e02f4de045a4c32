/**
 * `serve --takeover`'s first word, said before the command loads anything heavy.
 * Starting Node and loading shardgram takes a few hundred ms of CPU, which on a busy
 * machine the running service's workers lack just then: asking it first to raise its
 * receive buffers (`takeover-prepare`) gives its queues room for that moment. Only
 * node's own modules and the control socket's path are loaded here. Best effort:
 * whatever goes wrong is left for the takeover itself to report.
 */
import net from 'node:net';
import { parseArgs } from 'node:util';
import { defaultControlPath } from '../control/paths.js';
import { DEFAULTS, LIMITS } from '../defaults.js';

/** Longest wait for the running service's answer before starting anyway. */
const ANSWER_WAIT_MS = 500;

/** The control socket `serve` arguments point at, or undefined when they do not say. */
export function controlPathOf(args: readonly string[]): string | undefined {
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: { port: { type: 'string', short: 'p' }, address: { type: 'string', short: 'a' }, control: { type: 'string', short: 'c' } },
      strict: false,
      allowPositionals: true,
    }));
  } catch {
    return undefined;
  }
  if (typeof values.control === 'string') return values.control;
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > LIMITS.port.max) return undefined;
  return defaultControlPath(typeof values.address === 'string' ? values.address : DEFAULTS.address, port);
}

/** Asks the service on `serve`'s control socket to raise its buffers; resolves once it has answered, or after ANSWER_WAIT_MS. */
export function prepareTakeover(args: readonly string[]): Promise<void> {
  const path = controlPathOf(args);
  if (!path) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const conn = net.connect(path);
    const done = (): void => {
      clearTimeout(timer);
      conn.destroy();
      resolve();
    };
    const timer = setTimeout(done, ANSWER_WAIT_MS);
    conn.on('error', done);
    conn.on('data', done);
    conn.on('connect', () => conn.write(`${JSON.stringify({ op: 'takeover-prepare' })}\n`));
  });
}
