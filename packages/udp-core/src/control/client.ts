/** Talking to a running service's control socket: one request, one answer. */
import net from 'node:net';
import { ShardgramError, isErrorCode } from '../errors.js';
import type { ControlRequest, ControlResponse } from './protocol.js';

export async function controlRequest(path: string, request: ControlRequest, timeoutMs = 120_000): Promise<Record<string, unknown>> {
  const conn = net.connect(path);
  try {
    await new Promise<void>((resolve, reject) => {
      conn.once('connect', resolve);
      conn.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new ShardgramError(
            err.code === 'EACCES' ? 'ERR_SHARDGRAM_PERMISSION' : 'ERR_SHARDGRAM_STOPPED',
            err.code === 'EACCES'
              ? `permission denied on the control socket ${path}: only the user who runs the service may control it`
              : `no shardgram service answers on the control socket ${path} (${err.code ?? err.message}): is it running?`,
          ),
        ),
      );
    });
    conn.write(JSON.stringify(request) + '\n');
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new ShardgramError('ERR_SHARDGRAM_STOPPED', `the service did not answer "${request.op}" within ${timeoutMs / 1000} s`)), timeoutMs);
      conn.on('data', (c: Buffer) => {
        buf += c.toString('utf8');
        const nl = buf.indexOf('\n');
        if (nl >= 0) {
          clearTimeout(timer);
          resolve(buf.slice(0, nl));
        }
      });
      conn.once('close', () => {
        clearTimeout(timer);
        reject(new ShardgramError('ERR_SHARDGRAM_STOPPED', `the service closed the control connection without answering "${request.op}"`));
      });
    });
    const r = JSON.parse(line) as ControlResponse;
    // The server's own code comes through; one this version does not know reads as a worker's failure.
    if (!r.ok) throw new ShardgramError(isErrorCode(r.code) ? r.code : 'ERR_SHARDGRAM_WORKER', r.error);
    return r;
  } finally {
    conn.destroy();
  }
}
