/**
 * The control protocol: one JSON object per line each way, over the owner-only
 * unix socket. A request names an `op`; the answer has `ok` and either the result
 * or an `error` sentence.
 */

export type ControlRequest =
  | { op: 'status' }
  | { op: 'resize'; workers: number }
  | { op: 'reload' }
  | { op: 'takeover-prepare' }
  /** The first word of a hand-over; what follows is takeover/messages.ts. */
  | { op: 'takeover'; pid: number };

export type ControlResponse = ({ ok: true } & Record<string, unknown>) | { ok: false; error: string; code?: string };

/** Longest request line accepted (a request is a few dozen bytes). */
export const MAX_REQUEST_BYTES = 4096;
