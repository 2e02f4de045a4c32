/**
 * The dgram engine: Node's own UDP socket (libuv, one recvmsg per datagram) wrapped
 * around the inherited fd with `bind({ fd })`.
 */
import dgram from 'node:dgram';
import type { SendCallback, SendData } from '../../app/shard-socket.js';
import { EngineSocket, type EngineOptions } from './base.js';

export class DgramEngineSocket extends EngineSocket {
  readonly engine = 'dgram' as const;
  private readonly sock: dgram.Socket;

  constructor(opts: EngineOptions) {
    super(opts);
    this.sock = dgram.createSocket({ type: opts.family });
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const sock = this.sock;
      const onError = (err: Error): void => reject(err);
      sock.once('error', onError);
      sock.on('message', (msg, rinfo) => {
        this.counters.batches++;
        this.topSenders?.offer(rinfo.address, rinfo.port, rinfo.family as 'IPv4' | 'IPv6');
        this.deliver(msg, { address: rinfo.address, family: rinfo.family as 'IPv4' | 'IPv6', port: rinfo.port, size: rinfo.size });
        this.endBatch();
      });
      sock.bind({ fd: this.fd }, () => {
        sock.off('error', onError);
        sock.on('error', (err) => this.emit('error', err));
        resolve();
      });
    });
  }

  protected localAddress(): { address: string; port: number } {
    const a = this.sock.address();
    return { address: a.address, port: a.port };
  }

  send(data: SendData, port: number, address: string, callback?: SendCallback): void {
    if (this.warming) return void (callback && process.nextTick(callback, null, 0)); // warm-up replies go nowhere
    this.pending++;
    try {
      // dgram takes a string, a Uint8Array or a list of them, as SendData is.
      this.sock.send(data as Parameters<dgram.Socket['send']>[0], port, address, (err, bytes) => {
        this.pending--;
        if (err) this.counters.sendErrors++;
        else this.counters.sends++;
        callback?.(err ?? null, bytes);
      });
    } catch (err) {
      // Thrown before anything was queued (e.g. a reply to source port 0): counted, never left pending.
      this.pending--;
      this.counters.sendErrors++;
      if (callback) process.nextTick(callback, err instanceof Error ? err : new Error(String(err)));
      else throw err;
    }
  }

  protected stopReading(): void {
    this.sock.close();
  }
}
