/**
 * The echo reply format: `Hello from worker <i> (pid <pid>): ` followed by the
 * request's bytes. Plain clients (`nc -u`, `socat`) see who answered; the load
 * generator parses it to attribute replies to workers.
 */

export function echoPrefix(index: number, pid: number): Buffer {
  return Buffer.from(`Hello from worker ${index} (pid ${pid}): `, 'latin1');
}

export interface EchoReply {
  worker: number;
  pid: number;
  payload: Buffer;
}

const HEAD = Buffer.from('Hello from worker ', 'latin1');
const TAIL = Buffer.from('): ', 'latin1');

/** Parses an echo reply; undefined when it is not one. */
export function parseEchoReply(reply: Buffer): EchoReply | undefined {
  if (reply.length < HEAD.length + 9 || reply.compare(HEAD, 0, HEAD.length, 0, HEAD.length) !== 0) return undefined;
  const end = reply.indexOf(TAIL, HEAD.length);
  if (end < 0 || end > HEAD.length + 40) return undefined;
  const m = /^(\d+) \(pid (\d+)$/.exec(reply.toString('latin1', HEAD.length, end));
  if (!m) return undefined;
  return { worker: Number(m[1]), pid: Number(m[2]), payload: reply.subarray(end + TAIL.length) };
}
