/**
 * Errors with stable `code`s, in the manner of Node's own: the message says what
 * happened and what to do; the fields say it to a program.
 */
import { constants } from 'node:os';

const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  if (!errnoNames.has(value)) errnoNames.set(value, name);
}

/** `EADDRINUSE` for 98, `E<n>` for an errno Node does not name. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}

export type ShardgramErrorCode =
  | 'ERR_SHARDGRAM_INVALID_ARG'
  | 'ERR_SHARDGRAM_SYSCALL'
  | 'ERR_SHARDGRAM_PORT_HELD'
  | 'ERR_SHARDGRAM_FOREIGN_UID'
  | 'ERR_SHARDGRAM_ADDRESS'
  | 'ERR_SHARDGRAM_PERMISSION'
  | 'ERR_SHARDGRAM_WORKER'
  | 'ERR_SHARDGRAM_APP'
  /** Nothing answers where a service should (its control socket, its stats URL), or it hung up or fell silent. */
  | 'ERR_SHARDGRAM_UNREACHABLE'
  /** A call the service's state does not allow (e.g. a second takeover during one): the message names both. */
  | 'ERR_SHARDGRAM_STATE'
  /** The control socket has as many requests under way as it takes: try again. */
  | 'ERR_SHARDGRAM_BUSY';

export interface ShardgramErrorDetails {
  errno?: number;
  syscall?: string;
  address?: string;
  port?: number;
  option?: string;
  uid?: number;
  holders?: readonly PortHolder[];
  /** With ERR_SHARDGRAM_STATE: the state that refused the call. */
  state?: string;
}

/** A socket found bound to the port we wanted (from /proc/net/udp{,6} and /proc/PID/fd). */
export interface PortHolder {
  address: string;
  port: number;
  uid: number;
  user?: string;
  inode: number;
  pids: number[];
  commands: string[];
}

/** Every code, for those who read one off the wire (the control socket passes them through). */
export const ERROR_CODES: readonly ShardgramErrorCode[] = [
  'ERR_SHARDGRAM_INVALID_ARG',
  'ERR_SHARDGRAM_SYSCALL',
  'ERR_SHARDGRAM_PORT_HELD',
  'ERR_SHARDGRAM_FOREIGN_UID',
  'ERR_SHARDGRAM_ADDRESS',
  'ERR_SHARDGRAM_PERMISSION',
  'ERR_SHARDGRAM_WORKER',
  'ERR_SHARDGRAM_APP',
  'ERR_SHARDGRAM_UNREACHABLE',
  'ERR_SHARDGRAM_STATE',
  'ERR_SHARDGRAM_BUSY',
];

export function isErrorCode(code: unknown): code is ShardgramErrorCode {
  return typeof code === 'string' && (ERROR_CODES as readonly string[]).includes(code);
}

export class ShardgramError extends Error {
  readonly code: ShardgramErrorCode;
  readonly errno: number | undefined;
  readonly errnoName: string | undefined;
  readonly syscall: string | undefined;
  readonly address: string | undefined;
  readonly port: number | undefined;
  readonly option: string | undefined;
  readonly uid: number | undefined;
  readonly holders: readonly PortHolder[] | undefined;
  readonly state: string | undefined;

  constructor(code: ShardgramErrorCode, message: string, details: ShardgramErrorDetails = {}) {
    super(message);
    this.name = 'ShardgramError';
    this.code = code;
    this.errno = details.errno;
    this.errnoName = details.errno === undefined ? undefined : errnoName(details.errno);
    this.syscall = details.syscall;
    this.address = details.address;
    this.port = details.port;
    this.option = details.option;
    this.uid = details.uid;
    this.holders = details.holders;
    this.state = details.state;
  }
}

/** An error's message (or its stack), whatever was thrown: the one way this code says what went wrong. */
export function describeError(err: unknown, withStack = false): string {
  return err instanceof Error ? (withStack ? (err.stack ?? err.message) : err.message) : String(err);
}

export function invalidArg(name: string, value: unknown, expected: string): ShardgramError {
  let shown: string;
  try {
    shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
  } catch {
    shown = typeof value;
  }
  return new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `${name} must be ${expected}; got ${shown}`, {
    option: name,
  });
}
