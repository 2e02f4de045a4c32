/** Talking to a running service's control socket: one request, one answer. */
import net from 'node:net';
import { ShardgramError, isErrorCode } from '../errors.js';
import { LineReader } from './framing.js';
import { MAX_REQUEST_BYTES, type ControlRequest, type ControlResponse } from './protocol.js';

/** Answers are longer than requests (a status lists every worker). */
const MAX_ANSWER_BYTES = 64 * MAX_REQUEST_BYTES;

export async function controlRequest(path: string, request: ControlRequest, timeoutMs = 120_000): Promise<Record<string, unknown>> {
  const conn = net.connect(path);
  try {
    await new Promise<void>((resolve, reject) => {
      conn.once('connect', resolve);
      conn.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new ShardgramError(
            err.code === 'EACCES' ? 'ERR_SHARDGRAM_PERMISSION' : 'ERR_SHARDGRAM_UNREACHABLE',
            err.code === 'EACCES'
              ? `permission denied on the control socket ${path}: only the user who runs the service may control it`
              : `no shardgram service answers on the control socket ${path} (${err.code ?? err.message}): is it running?`,
          ),
        ),
      );
    });
    conn.on('error', () => undefined);
    const reader = new LineReader(conn, MAX_ANSWER_BYTES);
    reader.send(request);
    const next = await reader.next(timeoutMs);
    if ('timeout' in next) throw new ShardgramError('ERR_SHARDGRAM_UNREACHABLE', `the service did not answer "${request.op}" within ${timeoutMs / 1000} s`);
    if ('tooLong' in next)
      throw new ShardgramError('ERR_SHARDGRAM_UNREACHABLE', `the service's answer to "${request.op}" is longer than ${MAX_ANSWER_BYTES} bytes`);
    if ('closed' in next) throw new ShardgramError('ERR_SHARDGRAM_UNREACHABLE', `the service closed the control connection without answering "${request.op}"`);
    const r = parseAnswer(next.line, request.op);
    // The server's own code comes through; one this version does not know reads as a worker's failure.
    if (!r.ok) throw new ShardgramError(isErrorCode(r.code) ? r.code : 'ERR_SHARDGRAM_WORKER', r.error);
    return r;
  } finally {
    conn.destroy();
  }
}

/** An answer line as a ControlResponse; one that is not a JSON object is a service we cannot use (ERR_SHARDGRAM_UNREACHABLE). */
function parseAnswer(line: string, op: string): ControlResponse {
  let r: unknown;
  try {
    r = JSON.parse(line);
  } catch {
    r = undefined;
  }
  if (typeof r !== 'object' || r === null || typeof (r as { ok?: unknown }).ok !== 'boolean')
    throw new ShardgramError('ERR_SHARDGRAM_UNREACHABLE', `the answer to "${op}" on the control socket is not a shardgram service's answer`);
  return r as ControlResponse;
}
