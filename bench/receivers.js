// The receivers bench/run.js compares, one per row: shardgram's engines under a
// Supervisor, and child processes speaking the peers' line protocol (bench/peers/
// node-recv.js, bench/c/recv.c: a JSON ready line, then "stats" → a JSON line).
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { BENCH, freePort, sleep } from './lib.js';
import { ROW_INFO } from './report.js';

// ---------------------------------------------------------------------------
// C peers: compiled at bench time into bench/out (gitignored)
export function compileC(outDir, notes) {
  let cc;
  for (const c of [process.env.CC, 'cc', 'gcc', 'clang'].filter(Boolean)) {
    try {
      execFileSync(c, ['--version'], { stdio: 'ignore' });
      cc = c;
      break;
    } catch {
      // next
    }
  }
  if (!cc) return undefined;
  mkdirSync(outDir, { recursive: true });
  const bins = {};
  for (const name of ['recv', 'sender']) {
    const out = join(outDir, name);
    try {
      execFileSync(cc, ['-O2', '-Wall', '-o', out, join(BENCH, 'c', `${name}.c`)], { stdio: ['ignore', 'ignore', 'pipe'] });
      bins[name] = out;
    } catch (err) {
      notes.push(`bench/c/${name}.c did not compile with ${cc}: ${String(err.stderr ?? err.message).split('\n')[0]}`);
    }
  }
  return { cc, ...bins };
}

export function nodeVersionOf(path) {
  try {
    return execFileSync(path, ['-v'], { timeout: 10_000 }).toString().trim();
  } catch {
    return undefined;
  }
}
export function hasReusePort(version) {
  const m = /^v(\d+)\.(\d+)/.exec(version ?? '');
  if (!m) return false;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > 23 || (maj === 23 && min >= 1) || (maj === 22 && min >= 12);
}

// ---------------------------------------------------------------------------
// Child processes speaking the peers' line protocol (ready line, "stats" → JSON line)
function startPeer(cmd, argv, label) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    const lines = createInterface({ input: child.stdout });
    const waiting = [];
    let stderr = '';
    let readyDone = false;
    child.stderr.on('data', (d) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${label} did not get ready within 20 s: ${stderr}`));
    }, 20_000);
    child.on('exit', (code) => {
      if (!readyDone) {
        clearTimeout(timer);
        reject(new Error(`${label} exited (${code}) before ready: ${stderr}`));
      }
      for (const w of waiting.splice(0)) w.reject(new Error(`${label} exited`));
    });
    lines.on('line', (line) => {
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      if (msg.ready && !readyDone) {
        readyDone = true;
        clearTimeout(timer);
        resolve({
          label,
          port: msg.port,
          pids: msg.pids,
          async counts() {
            const p = new Promise((res, rej) => waiting.push({ resolve: res, reject: rej }));
            child.stdin.write('stats\n');
            const m = await Promise.race([p, sleep(5000).then(() => Promise.reject(new Error(`${label}: no stats within 5 s`)))]);
            return m.workers.map((w) => w.datagrams);
          },
          async stop() {
            const exited = new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
            child.stdin.end('quit\n');
            const t = setTimeout(() => child.kill('SIGKILL'), 3000);
            await exited;
            clearTimeout(t);
          },
        });
      } else if (msg.workers) {
        waiting.shift()?.resolve(msg);
      }
    });
  });
}

// ---------------------------------------------------------------------------
// Receivers: one per row
async function startShardgram(engine, { workers, rcvbuf, log }) {
  const { Supervisor } = await import('@shardgram/udp-core');
  const sup = new Supervisor({
    app: 'discard',
    address: '127.0.0.1',
    port: 0,
    workers,
    engine,
    snapshotIntervalMs: 50,
    ...(rcvbuf ? { rcvbuf } : {}),
    log: (line) => {
      if (/warning|error|fatal/i.test(line)) log(`  [${engine}] ${line}`);
    },
  });
  await sup.start();
  return {
    label: ROW_INFO[engine].label,
    port: sup.port,
    pids: sup.workerPids(),
    async counts() {
      return sup.stats().workers.map((w) => w.datagrams);
    },
    async stop() {
      await sup.stop();
    },
  };
}

/** Starts the receiver of a row: { label, port, pids, counts(), stop() }. `opts`: { c, node22, workers, rcvbuf, readDelayUs, log }. */
export async function startReceiver(row, opts) {
  const { c, node22, workers: WORKERS, rcvbuf: RCVBUF } = opts;
  switch (row) {
    case 'native':
    case 'dgram':
      return startShardgram(row, opts);
    case 'cluster': {
      const port = await freePort();
      return startPeer(
        process.execPath,
        [
          join(BENCH, 'peers', 'node-recv.js'),
          'cluster',
          '--port',
          String(port),
          '--workers',
          String(WORKERS),
          ...(RCVBUF ? ['--rcvbuf', String(RCVBUF)] : []),
        ],
        'cluster peer',
      );
    }
    case 'reuseport': {
      // A fixed port: with port 0, each worker would bind a port of its own.
      const port = await freePort();
      return startPeer(
        node22,
        [
          join(BENCH, 'peers', 'node-recv.js'),
          'reuseport',
          '--port',
          String(port),
          '--workers',
          String(WORKERS),
          ...(RCVBUF ? ['--rcvbuf', String(RCVBUF)] : []),
        ],
        'reusePort peer',
      );
    }
    case 'c':
      return startPeer(c.recv, ['--port', '0', '--workers', String(WORKERS), '--size', '2048', ...(RCVBUF ? ['--rcvbuf', String(RCVBUF)] : [])], 'C receiver');
    case 'cpaced':
      // The native engine's batch (64) and read delay (the discard app declares none: the default).
      return startPeer(
        c.recv,
        [
          '--port',
          '0',
          '--workers',
          String(WORKERS),
          '--size',
          '2048',
          '--paced-us',
          String(opts.readDelayUs),
          ...(RCVBUF ? ['--rcvbuf', String(RCVBUF)] : []),
        ],
        'paced C receiver',
      );
  }
  throw new Error(`unknown row ${row}`);
}
