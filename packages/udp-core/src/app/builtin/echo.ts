/**
 * `echo`: replies to every datagram with `Hello from worker <i> (pid <pid>): `
 * followed by what it got — the UDP twin of the classic "Hello from PID" demo.
 *
 *   npx shardgram serve echo --port 9000 --workers 4
 *   echo hi | nc -u -w1 127.0.0.1 9000
 */
import { defineApp } from '../shard-socket.js';
import { echoPrefix } from './echo-format.js';

export default defineApp((socket, ctx) => {
  const prefix = echoPrefix(ctx.index, ctx.pid);
  socket.on('message', (msg, rinfo) => {
    socket.send([prefix, msg], rinfo.port, rinfo.address);
  });
});

export const description = 'reply "Hello from worker <i> (pid <pid>): " + the datagram';
