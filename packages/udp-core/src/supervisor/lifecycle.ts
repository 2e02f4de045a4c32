/**
 * The service's life, in one place: every state a Supervisor can be in, and the only
 * moves between them. All the supervisor's mutable "where am I" lives here (as
 * Node's dgram keeps a socket's in one state object); everything else asks.
 *
 *   new ──► starting ──► running ◄──► changing
 *    │         │            │  ▲
 *    │         │            ▼  │ (abandoned)
 *    │         │       handing-over ──► handed-over ──► stopped
 *    ├──► taking-over ──► running        (the old side of a hand-over)
 *    │    (the new side of a hand-over)
 *    └──────── any live state ──► stopping ──► stopped
 *
 * A call that a state does not allow fails with ERR_SHARDGRAM_STATE, naming the
 * state that refused it and the call.
 */
import { ShardgramError } from '../errors.js';

export type State =
  | { readonly name: 'new' }
  | { readonly name: 'starting' }
  /**
   * The new side of a hand-over: its workers start on the sockets the service `from`
   * owns until it says done; `sole` once that service died, leaving them to this one alone.
   */
  | { readonly name: 'taking-over'; readonly from: number; readonly sole: boolean }
  | { readonly name: 'running' }
  | { readonly name: 'changing'; readonly change: 'resize' | 'reload' }
  /** The old side of a hand-over: the sockets are offered to the service `to`; this one owns them until it says done. */
  | { readonly name: 'handing-over'; readonly to: number }
  /** A new service owns the sockets; this one only exits. */
  | { readonly name: 'handed-over'; readonly to: number }
  /** `guestOf`: the new side of a hand-over stopping before it owned the group: its sockets are let go unread, the old service keeps them. */
  | { readonly name: 'stopping'; readonly guestOf?: number }
  | { readonly name: 'stopped' };

export type StateName = State['name'];

/** The moves each state allows. */
const MOVES: { readonly [S in StateName]: readonly StateName[] } = {
  new: ['starting', 'taking-over', 'stopping', 'stopped'],
  // A start that fails before any worker ran goes straight to stopped.
  starting: ['running', 'stopping', 'stopped'],
  'taking-over': ['taking-over', 'running', 'stopping', 'stopped'],
  running: ['changing', 'handing-over', 'stopping'],
  changing: ['running', 'stopping'],
  'handing-over': ['running', 'handed-over'],
  'handed-over': ['stopped'],
  stopping: ['stopped'],
  stopped: [],
};

/** States in which the service owns its workers and serves. */
const SERVING: readonly StateName[] = ['running', 'changing'];

export class Lifecycle {
  private current: State = { name: 'new' };

  constructor(private readonly onMove: (from: State, to: State) => void = () => undefined) {}

  get state(): State {
    return this.current;
  }

  is(...names: StateName[]): boolean {
    return names.includes(this.current.name);
  }

  /** Whether the service serves: running, or in a change. */
  get serving(): boolean {
    return SERVING.includes(this.current.name);
  }

  /** Moves to `next`; `call` names what asked, for the error when the move is not allowed. */
  move(next: State, call: string): void {
    if (!MOVES[this.current.name].includes(next.name)) throw refused(this.current, call);
    const from = this.current;
    this.current = next;
    this.onMove(from, next);
  }

  /** Throws unless the state is one of `names`. */
  require(call: string, ...names: StateName[]): void {
    if (!this.is(...names)) throw refused(this.current, call);
  }
}

/** The sentence a refused call gets: which state refused what, and why. */
export function describeState(s: State): string {
  switch (s.name) {
    case 'taking-over':
      return `taking over from pid ${s.from}${s.sole ? ' (which died)' : ''}`;
    case 'changing':
      return `in a ${s.change}`;
    case 'handing-over':
      return `handing over to pid ${s.to}`;
    case 'handed-over':
      return `handed over to pid ${s.to}`;
    default:
      return s.name;
  }
}

export function refused(s: State, call: string): ShardgramError {
  return new ShardgramError('ERR_SHARDGRAM_STATE', `${call} refused: the service is ${describeState(s)}`, { state: s.name });
}
