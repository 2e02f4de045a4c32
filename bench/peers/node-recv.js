// A benchmark peer: the traditional ways to spread one UDP port over Node.js
// processes, receiving and counting (a discard app), for bench/run.js to compare
// with shardgram.
//
//   node bench/peers/node-recv.js cluster   --port P [--address A] [--workers N] [--rcvbuf BYTES]
//   node bench/peers/node-recv.js reuseport --port P [--address A] [--workers N] [--rcvbuf BYTES]
//
// cluster:   node:cluster workers share one dgram socket. The primary binds it and
//            hands the same handle to every worker, all of which wait on it.
// reuseport: every cluster worker binds its own socket with dgram's `reusePort`
//            option (Node >= 22.12 / 23.1), an SO_REUSEPORT group like shardgram's.
//
// Protocol (same as bench/c/recv.c): prints {"ready":true,"port":P,"pids":[...]}
// once every worker is bound; then for each line "stats" on stdin prints
// {"workers":[{"pid":..,"datagrams":..}]}; ends on end of input or "quit".
import cluster from 'node:cluster';
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';

const [mode, ...rest] = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 && rest[i + 1] !== undefined ? rest[i + 1] : fallback;
};
const address = opt('address', '127.0.0.1');
const port = Number(opt('port', '0'));
const workers = Number(opt('workers', '2'));
const rcvbuf = opt('rcvbuf') === undefined ? undefined : Number(opt('rcvbuf'));

if (mode !== 'cluster' && mode !== 'reuseport') {
  process.stderr.write('usage: node-recv.js cluster|reuseport --port P [--address A] [--workers N]\n');
  process.exit(2);
}

if (cluster.isPrimary) {
  if (port === 0) {
    process.stderr.write('--port must be a fixed port: with 0 every worker would get a port of its own\n');
    process.exit(2);
  }
  const ws = [];
  let ready = 0;
  let pending = null;
  for (let i = 0; i < workers; i++) {
    const w = cluster.fork();
    ws.push(w);
    w.on('message', (m) => {
      if (m.t === 'ready' && ++ready === workers) {
        process.stdout.write(`${JSON.stringify({ ready: true, port: m.port, pids: ws.map((x) => x.process.pid) })}\n`);
      } else if (m.t === 'count' && pending) {
        pending.got.set(w.process.pid, m.datagrams);
        if (pending.got.size === workers) {
          const got = pending.got;
          pending = null;
          process.stdout.write(`${JSON.stringify({ workers: ws.map((x) => ({ pid: x.process.pid, datagrams: got.get(x.process.pid) })) })}\n`);
        }
      } else if (m.t === 'error') {
        process.stderr.write(`worker ${w.process.pid}: ${m.message}\n`);
        process.exit(1);
      }
    });
    w.on('exit', (code) => {
      if (!stopping) {
        process.stderr.write(`worker ${w.process.pid} exited (${code})\n`);
        process.exit(1);
      }
    });
  }
  let stopping = false;
  const stop = () => {
    stopping = true;
    for (const w of ws) w.kill();
    setTimeout(() => process.exit(0), 200).unref();
  };
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (line.startsWith('quit')) stop();
    else if (line.startsWith('stats') && !pending) {
      pending = { got: new Map() };
      for (const w of ws) w.send({ t: 'stats' });
    }
  });
  rl.on('close', stop);
} else {
  let datagrams = 0;
  const family = address.includes(':') ? 'udp6' : 'udp4';
  const sock = dgram.createSocket({
    type: family,
    ...(mode === 'reuseport' ? { reusePort: true } : {}),
    ...(rcvbuf ? { recvBufferSize: rcvbuf } : {}),
  });
  sock.on('message', () => {
    datagrams++;
  });
  sock.on('error', (err) => process.send({ t: 'error', message: err.message }));
  // In a cluster worker, exclusive: false (the default) binds through the primary's
  // shared handle; exclusive: true binds a socket of the worker's own.
  sock.bind({ port, address, exclusive: mode === 'reuseport' }, () => {
    process.send({ t: 'ready', port: sock.address().port });
  });
  process.on('message', (m) => {
    if (m.t === 'stats') process.send({ t: 'count', datagrams });
  });
}
