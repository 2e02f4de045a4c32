/**
 * The upgrade hand-over over the control socket. The new supervisor asks for the
 * group; the old one answers with its state and, in the same message, every socket
 * of the group as SCM_RIGHTS. The new one starts its workers on those very sockets
 * (same queues, same slots in the group) and says when they read; only then does
 * the old one stop its workers, without draining (the sockets stay open in the new
 * one), and send its counts. If the new side fails or goes quiet at any step, the
 * old one serves on as if nothing had happened.
 *
 *   new → old   {"op":"takeover-prepare"}                           (optional, first thing at its start: raise the buffers)
 *   old → new   {"ok":true,"heldMs":N}
 *   new → old   {"op":"takeover","pid":N}
 *   old → new   {"ok":true,"op":"takeover-offer",…state} + fds      (or {"ok":false,"error":…})
 *   new → old   {"op":"takeover-ready"}                              (or takeover-abort / close)
 *   old → new   {"ok":true,"op":"takeover-done","total":{…}}        then the old one exits 0
 */
import net from 'node:net';
import type { Counters } from '../counters.js';
import { ShardgramError } from '../errors.js';
import { adoptSocket, type AdoptedSocket } from '../ffi/adopt.js';
import { F_DUPFD_CLOEXEC, SCM_MAX_FD, SOL_SOCKET, SO_RCVTIMEO, TIMEVAL_SIZE, TV_SEC } from '../ffi/kernel.js';
import { libc } from '../ffi/libc.js';
import { connectUnix, peerCred, recvWithFds, sendWithFds, type PeerCred } from '../ffi/unix.js';
import { raiseBuffers, type LetGo } from '../supervisor/buffers.js';
import type { HandOverOffer, Supervisor } from '../supervisor/supervisor.js';
import type { ControlRequest } from './protocol.js';
import { socketFd } from './server.js';

/**
 * How long the old side holds its buffers raised after `takeover-prepare` for the
 * takeover request to come (a new service's start takes well under a second or two).
 */
export const PREPARE_HOLD_MS = 15_000;
/** How long the old side waits for the new one's workers to read. */
export const TAKEOVER_TIMEOUT_MS = 60_000;
/** How long the new side waits for an answer at each step. */
const ANSWER_TIMEOUT_MS = 30_000;

/** The offer as received: `rcvbufs` is missing from a service of an older version. */
type Offer = Omit<HandOverOffer, 'fds' | 'rcvbufs' | 'braced'> & { nfds: number; rcvbufs?: number[]; braced?: boolean };

/** Reads lines from a connection until one answers; resolves on close with undefined. */
function nextLine(conn: net.Socket, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let buf = '';
    const done = (v: string | undefined): void => {
      clearTimeout(timer);
      conn.off('data', onData);
      conn.off('close', onClose);
      resolve(v);
    };
    const onData = (d: Buffer): void => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl >= 0) done(buf.slice(0, nl));
    };
    const onClose = (): void => done(undefined);
    const timer = setTimeout(() => done(undefined), timeoutMs);
    conn.on('data', onData);
    conn.once('close', onClose);
  });
}

export interface HandedOverHooks {
  /** Closes this service's endpoints (control socket, stats port) before the new one takes them. */
  closeEndpoints(): Promise<void>;
  /** Called once the new service has been told: this one exits. */
  exit(counters: Partial<Counters>): void;
}

/** Old side: the control server's `takeover-prepare` handler (the new service's first word, before its slow start). */
export function prepareTakeoverHandler(sup: Supervisor, log: (line: string) => void) {
  return (): Record<string, unknown> => {
    sup.brace(PREPARE_HOLD_MS);
    log(`takeover: a new service is starting; receive buffers raised for up to ${PREPARE_HOLD_MS / 1000} s`);
    return { heldMs: PREPARE_HOLD_MS };
  };
}

/** Old side: the control server's `takeover` handler. */
export function takeoverHandler(sup: Supervisor, log: (line: string) => void, hooks: HandedOverHooks) {
  return (conn: net.Socket, peer: PeerCred, req: Extract<ControlRequest, { op: 'takeover' }>): void => {
    log(`takeover requested by pid ${peer.pid} (uid ${peer.uid})`);
    void sup
      .handOver(async (offer) => {
        const { fds, ...state } = offer;
        if (fds.length > SCM_MAX_FD) throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `a group of ${fds.length} sockets cannot be handed over in one message (at most ${SCM_MAX_FD}); shrink it first`);
        const answer: Offer & { ok: true; op: 'takeover-offer' } = { ok: true, op: 'takeover-offer', ...state, nfds: fds.length };
        sendWithFds(socketFd(conn), Buffer.from(JSON.stringify(answer) + '\n'), fds);
        for (;;) {
          const line = await nextLine(conn, TAKEOVER_TIMEOUT_MS);
          if (line === undefined) {
            log(`takeover by pid ${req.pid}: the new service went away (or was silent for ${TAKEOVER_TIMEOUT_MS / 1000} s) before its workers read`);
            return false;
          }
          let msg: { op?: string; reason?: string };
          try {
            msg = JSON.parse(line) as typeof msg;
          } catch {
            continue;
          }
          if (msg.op === 'takeover-ready') return true;
          if (msg.op === 'takeover-abort') {
            log(`takeover by pid ${req.pid} abandoned by the new service: ${msg.reason ?? 'no reason given'}`);
            return false;
          }
        }
      })
      .then(
        async (counters) => {
          if (!counters) {
            conn.destroy();
            return;
          }
          await hooks.closeEndpoints();
          conn.end(JSON.stringify({ ok: true, op: 'takeover-done', total: counters }) + '\n', () => hooks.exit(counters));
        },
        (err: unknown) => {
          conn.end(JSON.stringify({ ok: false, error: `takeover refused: ${err instanceof Error ? err.message : String(err)}` }) + '\n');
        },
      );
  };
}

export interface TakeoverSession {
  readonly offer: Offer;
  readonly sockets: AdoptedSocket[];
  /** Tells the old service our workers read; resolves with its counts once it has let go. */
  ready(): Promise<Partial<Counters>>;
  /** Gives up: the old service serves on. */
  abort(reason: string): void;
}

/**
 * New side: connects to the running service's control socket and receives its
 * group. Blocking calls with a timeout, made once at start.
 */
export function requestTakeover(path: string): TakeoverSession {
  let fd: number;
  try {
    fd = connectUnix(path, 'stream');
  } catch (err) {
    throw new ShardgramError('ERR_SHARDGRAM_STOPPED', `--takeover: no running service answers on its control socket ${path} (${(err as Error).message}). Start without --takeover, or give its socket with --control.`);
  }
  const c = libc();
  try {
    const me = process.geteuid?.() ?? 0;
    const peer = peerCred(fd);
    if (peer.uid !== me) throw new ShardgramError('ERR_SHARDGRAM_FOREIGN_UID', `--takeover: the service on ${path} runs as uid ${peer.uid}, not as this user (uid ${me}); only a service of the same user can be taken over`, { uid: peer.uid });
    const tv = Buffer.alloc(TIMEVAL_SIZE);
    tv.writeBigInt64LE(BigInt(ANSWER_TIMEOUT_MS / 1000), TV_SEC);
    c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, TIMEVAL_SIZE);
    sendWithFds(fd, Buffer.from(JSON.stringify({ op: 'takeover', pid: process.pid }) + '\n'), []);
    let text = '';
    const fds: number[] = [];
    let answer: ({ ok: true; op: string } & Offer) | { ok: false; error: string };
    try {
      while (!text.includes('\n')) {
        const r = recvWithFds(fd, 65536, SCM_MAX_FD);
        fds.push(...r.fds);
        if (r.data.length === 0) break;
        text += r.data.toString('utf8');
      }
      answer = JSON.parse(text.slice(0, text.indexOf('\n')) || '{"ok":false,"error":"no answer"}') as typeof answer;
    } catch (err) {
      for (const f of fds) c.close(f);
      throw new ShardgramError('ERR_SHARDGRAM_SYSCALL', `--takeover: no usable answer from the running service: ${(err as Error).message}`);
    }
    if (!answer.ok) {
      for (const f of fds) c.close(f);
      throw new ShardgramError('ERR_SHARDGRAM_STOPPED', `--takeover: the running service said: ${answer.error}`);
    }
    if (fds.length !== answer.nfds) {
      for (const f of fds) c.close(f);
      throw new ShardgramError('ERR_SHARDGRAM_SYSCALL', `--takeover: expected ${answer.nfds} sockets from the running service, received ${fds.length}`);
    }
    let sockets: AdoptedSocket[];
    try {
      sockets = fds.map((f, i) => adoptSocket(f, `socket ${i} of the running service`));
    } catch (err) {
      for (const f of fds) c.close(f);
      throw err;
    }
    // The rest of the exchange is asynchronous.
    const conn = new net.Socket({ fd, readable: true, writable: true });
    conn.on('error', () => undefined);
    const { ok: _ok, op: _op, ...offer } = answer;
    return {
      offer,
      sockets,
      async ready() {
        conn.write(JSON.stringify({ op: 'takeover-ready' }) + '\n');
        const line = await nextLine(conn, TAKEOVER_TIMEOUT_MS);
        conn.destroy();
        const done = line ? (JSON.parse(line) as { ok: boolean; total?: Partial<Counters>; error?: string }) : undefined;
        if (!done?.ok || !done.total) throw new ShardgramError('ERR_SHARDGRAM_STOPPED', `--takeover: the running service did not confirm the hand-over${done?.error ? `: ${done.error}` : ''}`);
        return done.total;
      },
      abort(reason) {
        conn.end(JSON.stringify({ op: 'takeover-abort', reason }) + '\n', () => conn.destroy());
      },
    };
  } catch (err) {
    c.close(fd);
    throw err;
  }
}

/** How long the new side waits for each of its workers to handle a first datagram. */
export const WARM_TIMEOUT_MS = 3000;
/** A takeover that failed waits at most this long for the queues to fit their own buffers again before it exits. */
const TAKEOVER_LOWER_MS = 2000;

/**
 * New side, whole: takes the group over from the service on `path`, starts this
 * supervisor's workers on it, waits until each has handled a datagram (or a quiet
 * WARM_TIMEOUT_MS), lets the old service go, and carries its counts on. Resolves
 * with the old service's pid. On any failure the old service keeps serving, this
 * supervisor is stopped without touching the queues, and the error says why.
 */
export async function takeOver(sup: Supervisor, path: string, log: (line: string) => void): Promise<number> {
  let session: TakeoverSession | undefined;
  let adopted = false;
  let readySent = false;
  /** Our own duplicates of the sockets, to set their buffers whatever the supervisor has let go of. */
  let dups: number[] = [];
  let dupsOpen = false;
  let letGo = (_how?: LetGo): Promise<void> => Promise.resolve();
  /** Our raise ends (see buffers.ts: the buffers go back once their queues fit them), then our duplicates close. */
  const restoreBuffers = (how?: LetGo): Promise<void> =>
    letGo(how).finally(() => {
      if (dupsOpen) for (const fd of dups) libc().close(fd);
      dupsOpen = false;
    });
  try {
    // First the sockets, then everything slow (loading the app, starting workers): the
    // old workers read on meanwhile, into buffers made larger for the length of the change.
    session = requestTakeover(path);
    const s = session;
    const o = s.offer;
    log(`takeover: received ${o.nfds} sockets of udp ${o.address}:${o.port} from pid ${o.pid} (${o.workers} workers, ${o.policy.name} policy, app ${o.app})`);
    dups = s.sockets.map((k) => libc().fcntl(k.fd, F_DUPFD_CLOEXEC, 0));
    dupsOpen = true;
    // Their own sizes come with the offer: the old service may have raised them already (a brace).
    const own = Array.isArray(o.rcvbufs) && o.rcvbufs.length === dups.length && o.rcvbufs.every((n) => Number.isInteger(n) && n > 0) ? o.rcvbufs : undefined;
    letGo = raiseBuffers(
      dups.map((fd, i) => ({ fd, inode: s.sockets[i]!.inode, stillOpen: () => dupsOpen, ...(own ? { own: own[i]! } : {}) })),
      sup.changeRcvbuf,
    );
    // The old service went on serving while the drops it counted carry on from its baselines.
    sup.sharedWith = 'hand-over';
    await sup.start(async () => {
      adopted = true;
      return { sockets: s.sockets, workers: o.workers, policy: o.policy, dropsBefore: o.dropsBefore, ...(own ? { rcvbufs: own } : {}) };
    });
    const deadline = Date.now() + WARM_TIMEOUT_MS;
    while (Date.now() < deadline && sup.stats().workers.some((w) => w.datagrams === 0)) await new Promise((r) => setTimeout(r, 10));
    const cold = sup.stats().workers.filter((w) => w.datagrams === 0).length;
    if (cold) log(`takeover: ${cold} of ${sup.workers} new workers have had no datagram in ${WARM_TIMEOUT_MS / 1000} s (little traffic); going on`);
    readySent = true;
    const counters = await s.ready();
    sup.inheritCounts(counters, o.pid);
    sup.sharedWith = undefined;
    void restoreBuffers();
    return o.pid;
  } catch (err) {
    if (readySent) {
      // The old service may already have let go of the sockets: from here this one must
      // serve on, whatever the old one said or did not say.
      sup.sharedWith = undefined;
      void restoreBuffers();
      log(`takeover: the old service did not confirm the hand-over (${err instanceof Error ? err.message : String(err)}); serving on, without its counts`);
      return session!.offer.pid;
    }
    session?.abort(err instanceof Error ? err.message : String(err));
    await sup.stop();
    // Sockets the supervisor never took are ours to close (never read out: the old service serves them).
    if (session && !adopted) for (const k of session.sockets) libc().close(k.fd);
    // A braced old service puts its buffers back itself; an older one, which did not
    // raise them, has them put back from here before this process exits.
    await restoreBuffers(session?.offer.braced ? { keep: true } : { giveUpMs: TAKEOVER_LOWER_MS, ref: true });
    throw err;
  }
}
