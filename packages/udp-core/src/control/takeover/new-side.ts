/**
 * The hand-over over the control socket, the new side's end (the policy is
 * supervisor/takeover.ts): connect to the running service's control socket, ask for
 * the group, receive its state and sockets, and from then on hear the old side: its
 * done, its giving up on us, or its death (the connection closes and its pidfd says
 * it exited) the moment it happens.
 */
import net from 'node:net';
import { ShardgramError, describeError, isErrorCode } from '../../errors.js';
import { adoptSocket, type AdoptedSocket } from '../../ffi/adopt.js';
import { SCM_MAX_FD, SOL_SOCKET, SO_RCVTIMEO, TIMEVAL_SIZE, TV_SEC } from '../../ffi/kernel.js';
import { libc } from '../../ffi/libc.js';
import { hasExited, ProcessHandle } from '../../ffi/pidfd.js';
import { connectUnix, peerCred, recvWithFds, sendWithFds } from '../../ffi/unix.js';
import type { Counters } from '../../stats/counters.js';
import type { ReceivedOffer, SourceLoss, TakeoverSource } from '../../supervisor/types.js';
import { LineReader } from '../framing.js';
import { MAX_REQUEST_BYTES } from '../protocol.js';
import { parseFromOld, parseOfferAnswer } from './messages.js';

/** How long the new side waits for the offer. */
const OFFER_TIMEOUT_MS = 30_000;
/** An old side whose connection closed is given this long to finish exiting before it is judged alive. */
const EXIT_GRACE_MS = 1000;

/** Connects and receives the offer with its sockets: blocking calls with a timeout, made once at start. */
export function requestTakeover(path: string): TakeoverSource {
  let fd: number;
  try {
    fd = connectUnix(path, 'stream');
  } catch (err) {
    throw new ShardgramError(
      'ERR_SHARDGRAM_UNREACHABLE',
      `--takeover: no running service answers on its control socket ${path} (${describeError(err)}). Start without --takeover, or give its socket with --control.`,
    );
  }
  const c = libc();
  const fds: number[] = [];
  const closeFds = (): void => {
    for (const f of fds.splice(0)) c.close(f);
  };
  try {
    const me = process.geteuid?.() ?? 0;
    const peer = peerCred(fd);
    if (peer.uid !== me)
      throw new ShardgramError(
        'ERR_SHARDGRAM_FOREIGN_UID',
        `--takeover: the service on ${path} runs as uid ${peer.uid}, not as this user (uid ${me}); only a service of the same user can be taken over`,
        { uid: peer.uid },
      );
    // Held from before the request: whatever the old process does next, this says whether it exited.
    const handle = ProcessHandle.open(peer.pid);
    const tv = Buffer.alloc(TIMEVAL_SIZE);
    tv.writeBigInt64LE(BigInt(OFFER_TIMEOUT_MS / 1000), TV_SEC);
    c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, TIMEVAL_SIZE);
    sendWithFds(fd, Buffer.from(`${JSON.stringify({ op: 'takeover', pid: process.pid })}\n`), []);
    let text = '';
    try {
      while (!text.includes('\n') && text.length < MAX_REQUEST_BYTES * 16) {
        const r = recvWithFds(fd, 65536, SCM_MAX_FD);
        fds.push(...r.fds);
        if (r.data.length === 0) break;
        text += r.data.toString('utf8');
      }
    } catch (err) {
      // A failed recvmsg keeps its code and errno.
      const kernel = err instanceof ShardgramError ? err : undefined;
      throw new ShardgramError(
        kernel?.code ?? 'ERR_SHARDGRAM_UNREACHABLE',
        `--takeover: no usable answer from the running service: ${describeError(err)}`,
        kernel ? { ...(kernel.errno !== undefined ? { errno: kernel.errno } : {}), ...(kernel.syscall !== undefined ? { syscall: kernel.syscall } : {}) } : {},
      );
    }
    const end = text.indexOf('\n');
    const answer = end < 0 ? 'the connection closed without an answer' : parseOfferAnswer(text.slice(0, end));
    // An answer that is not an offer nor a refusal is a service we cannot use.
    if (typeof answer === 'string') throw new ShardgramError('ERR_SHARDGRAM_UNREACHABLE', `--takeover: no usable answer from the running service: ${answer}`);
    if (!answer.ok) {
      // The old side's own code passes through (a state refusal, a busy or foreign control socket...);
      // an answer without a known code is a service we cannot use.
      const code = isErrorCode(answer.code) ? answer.code : 'ERR_SHARDGRAM_UNREACHABLE';
      throw new ShardgramError(code, `--takeover: the running service said: ${answer.error}`);
    }
    if (fds.length !== answer.nfds)
      throw new ShardgramError('ERR_SHARDGRAM_UNREACHABLE', `--takeover: expected ${answer.nfds} sockets from the running service, received ${fds.length}`);
    const sockets: AdoptedSocket[] = fds.map((f, i) => adoptSocket(f, `socket ${i} of the running service`));
    const { ok: _ok, op: _op, ...offer } = answer;
    // The rest of the exchange is asynchronous; the reader hears the old side from this moment on.
    const conn = new net.Socket({ fd, readable: true, writable: true });
    conn.on('error', () => undefined);
    return sourceOver(conn, new LineReader(conn, MAX_REQUEST_BYTES * 16), offer, sockets, handle);
  } catch (err) {
    closeFds();
    c.close(fd);
    throw err;
  }
}

function sourceOver(conn: net.Socket, reader: LineReader, offer: ReceivedOffer, sockets: AdoptedSocket[], handle: ProcessHandle | undefined): TakeoverSource {
  let resolveLost!: (l: SourceLoss) => void;
  const lost = new Promise<SourceLoss>((r) => (resolveLost = r));
  let done: ((total: Partial<Counters>) => void) | undefined;
  let settled = false;
  // One reader of the old side's words for the whole exchange: done, abandoned, or the connection's close.
  void (async () => {
    for (;;) {
      const r = await reader.next(0);
      if ('line' in r) {
        const m = parseFromOld(r.line);
        if (!m) continue;
        if (m.ok && m.op === 'takeover-done') {
          settled = true;
          handle?.close();
          done?.(m.total);
          return;
        }
        if (m.ok && m.op === 'takeover-abandoned') {
          settled = true;
          resolveLost({ lost: 'abandoned', detail: m.reason });
          return;
        }
        if (!m.ok) {
          settled = true;
          resolveLost({ lost: 'abandoned', detail: m.error });
          return;
        }
        continue;
      }
      // We hung up ourselves (take, abort): nothing more to hear.
      if (settled) return;
      // Closed (or garbage past the limit): did it die, or did it hang up on us alive?
      const died = hasExited(offer.pid, handle, EXIT_GRACE_MS);
      handle?.close();
      settled = true;
      resolveLost(died ? { lost: 'died', detail: 'exited during the hand-over' } : { lost: 'abandoned', detail: 'it closed the connection' });
      return;
    }
  })();
  return {
    offer,
    sockets,
    lost,
    ready(timeoutMs) {
      reader.send({ op: 'takeover-ready' });
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          // After the poll phase: a word that arrived meanwhile wins over our patience.
          setImmediate(() => {
            if (!settled) resolve({ silent: true });
          });
        }, timeoutMs);
        done = (total) => {
          clearTimeout(timer);
          resolve({ done: total });
        };
        void lost.then((l) => {
          clearTimeout(timer);
          resolve(l);
        });
      });
    },
    ack() {
      reader.send({ op: 'takeover-ack' }, () => conn.destroy());
    },
    take(reason) {
      settled = true;
      reader.send({ op: 'takeover-taken', reason }, () => conn.destroy());
    },
    abort(reason) {
      settled = true;
      reader.send({ op: 'takeover-abort', reason }, () => conn.destroy());
    },
  };
}
