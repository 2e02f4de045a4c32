/**
 * ffi/uv-poll.ts: readable events of an fd from Node's own libuv loop, uv_poll called
 * directly. Level-triggered like koffi.node.poll: a socket with a datagram queued and
 * unread is reported at every loop turn until stopped; stop and start pause and resume;
 * after close nothing more is reported, and the koffi callback slot is given back
 * (more polls than koffi's 8192 slots can be made and closed one after another). Off the
 * main thread, whose loop is not uv_default_loop, it is koffi.node.poll (run in a worker
 * thread from the built module, as a child would load it). An exception out of the
 * callback is not lost on either path: it is uncaught, which ends the process (or the
 * thread), as any exception in an I/O callback does.
 */
import { spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { closeAll, openClients, send } from '@shardgram/test-kit/udp';
import { waitFor } from '@shardgram/test-kit/wait';
import { closeFd, openReusePortSocket } from '@shardgram/udp-core/sockets';
import { pollReadable } from '../src/ffi/uv-poll.js';

/** Resolves after `n` turns of the event loop (each turn polls for I/O once). */
async function loopTurns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}

describe('uv-poll', () => {
  it('calls back while a datagram is queued, not after stop or close, and again after start', async () => {
    const sock = openReusePortSocket({ address: '127.0.0.1', port: 0 });
    const [client] = await openClients(1);
    let events = 0;
    const p = pollReadable(sock.fd, () => void events++);
    try {
      expect(p.via).toBe('uv');
      await loopTurns(5);
      expect(events).toBe(0); // nothing queued
      await send(client!, 'x', sock.port);
      expect(await waitFor(() => events >= 3, 5000, 1)).toBe(true); // reported again while unread
      p.stop();
      const stopped = events;
      await loopTurns(10);
      expect(events).toBe(stopped);
      p.start();
      expect(await waitFor(() => events > stopped, 5000, 1)).toBe(true);
      p.close();
      const closed = events;
      await loopTurns(10);
      expect(events).toBe(closed);
      p.start(); // a closed poll stays closed
      p.stop();
      p.close();
      await loopTurns(10);
      expect(events).toBe(closed);
    } finally {
      p.close();
      closeAll([client!]);
      closeFd(sock.fd);
    }
  });

  it('gives its callback slot back on close: 10,000 polls made and closed in turn', async () => {
    const sock = openReusePortSocket({ address: '127.0.0.1', port: 0 });
    try {
      for (let i = 0; i < 10_000; i++) {
        const p = pollReadable(sock.fd, () => {});
        p.stop();
        p.close();
        // libuv finishes a close on the next loop turn.
        if (i % 1000 === 999) await loopTurns(1);
      }
    } finally {
      closeFd(sock.fd);
    }
  });

  it('off the main thread falls back to koffi.node.poll, which reports a queued datagram too', async () => {
    const sock = openReusePortSocket({ address: '127.0.0.1', port: 0 });
    const [client] = await openClients(1);
    // The worker polls the socket, says which way, then reports its first event and closes the poll.
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.module).then(({ pollReadable }) => {
        const p = pollReadable(workerData.fd, () => { p.close(); parentPort.postMessage('readable'); });
        parentPort.postMessage(p.via);
      });`;
    const module = new URL('../dist/ffi/uv-poll.js', import.meta.url).href;
    const w = new Worker(code, { eval: true, workerData: { module, fd: sock.fd } });
    const said: string[] = [];
    w.on('message', (m: string) => void said.push(m));
    try {
      expect(await waitFor(() => said.length === 1, 5000, 5)).toBe(true);
      expect(said[0]).toBe('koffi');
      await send(client!, 'x', sock.port);
      expect(await waitFor(() => said.length === 2, 5000, 5)).toBe(true);
      expect(said[1]).toBe('readable');
    } finally {
      await w.terminate();
      closeAll([client!]);
      closeFd(sock.fd);
    }
  });
  it('an exception out of the callback is uncaught on the main thread (uv_poll): the process ends with it, it is not lost', async () => {
    const module = new URL('../dist/ffi/uv-poll.js', import.meta.url).href;
    const sockets = new URL('../dist/exports/sockets.js', import.meta.url).href;
    // The child polls a socket of its own and sends itself a datagram; its callback throws.
    // If the exception were lost, the child would read on unaware: it says so after 10 s.
    const code = `
      import dgram from 'node:dgram';
      const { pollReadable } = await import(${JSON.stringify(module)});
      const { openReusePortSocket } = await import(${JSON.stringify(sockets)});
      const sock = openReusePortSocket({ address: '127.0.0.1', port: 0 });
      const p = pollReadable(sock.fd, () => { throw new Error('engine bug ' + p.via); });
      const c = dgram.createSocket('udp4');
      c.send('x', sock.port, '127.0.0.1', () => c.close());
      setTimeout(() => { console.log('lost'); process.exit(3); }, 10_000).unref();
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exitCode = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(out).toMatch(/Error: engine bug uv/);
    expect(exitCode).toBe(1);
  });

  it('off the main thread (koffi.node.poll) an exception out of the callback ends the thread with it', async () => {
    const sock = openReusePortSocket({ address: '127.0.0.1', port: 0 });
    const [client] = await openClients(1);
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.module).then(({ pollReadable }) => {
        const p = pollReadable(workerData.fd, () => { throw new Error('engine bug ' + p.via); });
        parentPort.postMessage(p.via);
      });`;
    const module = new URL('../dist/ffi/uv-poll.js', import.meta.url).href;
    const w = new Worker(code, { eval: true, workerData: { module, fd: sock.fd } });
    const said: string[] = [];
    const errors: Error[] = [];
    w.on('message', (m: string) => void said.push(m));
    w.on('error', (e) => void errors.push(e));
    try {
      expect(await waitFor(() => said.length === 1, 5000, 5)).toBe(true);
      await send(client!, 'x', sock.port);
      expect(await waitFor(() => errors.length === 1, 5000, 5)).toBe(true);
      expect(errors[0]!.message).toBe('engine bug koffi');
    } finally {
      await w.terminate();
      closeAll([client!]);
      closeFd(sock.fd);
    }
  });
});
