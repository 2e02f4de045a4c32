/**
 * The service's life (supervisor/lifecycle.ts): every move its table allows is made,
 * every other move from every state is refused with ERR_SHARDGRAM_STATE naming the
 * state that refused it and the call, and the state stays as it was. Then the same
 * refusals on a real Supervisor: resize, reload and start from a state that does not
 * allow them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rejectedWith, thrownBy } from '@shardgram/test-kit/throws';
// The error class of the same copy as lifecycle.ts (not exported), for instanceof.
import { ShardgramError } from '../src/errors.js';
import { Lifecycle, describeState, type State, type StateName } from '../src/supervisor/lifecycle.js';
// The real service as a user has it (its workers run the built worker).
import { ShardgramError as PublicError, Supervisor } from '@shardgram/udp-core';

/** The moves the design allows (docs/architecture.md, lifecycle.ts's diagram), written out here on their own. */
const ALLOWED: Record<StateName, StateName[]> = {
  new: ['starting', 'taking-over', 'stopping', 'stopped'],
  starting: ['running', 'stopping', 'stopped'],
  'taking-over': ['taking-over', 'running', 'stopping', 'stopped'],
  running: ['changing', 'handing-over', 'stopping'],
  changing: ['running', 'stopping'],
  'handing-over': ['running', 'handed-over'],
  'handed-over': ['stopped'],
  stopping: ['stopped'],
  stopped: [],
};
const NAMES = Object.keys(ALLOWED) as StateName[];

/** A state of each name, with what it carries. */
function stateOf(name: StateName): State {
  switch (name) {
    case 'taking-over':
      return { name, from: 4242, sole: false };
    case 'changing':
      return { name, change: 'resize' };
    case 'handing-over':
    case 'handed-over':
      return { name, to: 4343 };
    default:
      return { name };
  }
}

/** The way from new to each state, by allowed moves. */
const PATH: Record<StateName, StateName[]> = {
  new: [],
  starting: ['starting'],
  'taking-over': ['taking-over'],
  running: ['starting', 'running'],
  changing: ['starting', 'running', 'changing'],
  'handing-over': ['starting', 'running', 'handing-over'],
  'handed-over': ['starting', 'running', 'handing-over', 'handed-over'],
  stopping: ['stopping'],
  stopped: ['stopped'],
};

function lifeIn(name: StateName, moves: [StateName, StateName][] = []): Lifecycle {
  const life = new Lifecycle((from, to) => moves.push([from.name, to.name]));
  for (const step of PATH[name]) life.move(stateOf(step), 'test path');
  expect(life.state.name).toBe(name);
  moves.length = 0;
  return life;
}

const refusal = (fn: () => unknown): ShardgramError => thrownBy(ShardgramError, fn);

describe('the lifecycle table', () => {
  for (const from of NAMES) {
    for (const to of NAMES) {
      if (ALLOWED[from].includes(to)) {
        it(`moves ${from} → ${to}, and tells its listener`, () => {
          const moves: [StateName, StateName][] = [];
          const life = lifeIn(from, moves);
          life.move(stateOf(to), 'the call');
          expect(life.state).toEqual(stateOf(to));
          expect(moves).toEqual([[from, to]]);
        });
      } else {
        it(`refuses ${from} → ${to} with ERR_SHARDGRAM_STATE naming ${from}`, () => {
          const moves: [StateName, StateName][] = [];
          const life = lifeIn(from, moves);
          const before = life.state;
          const e = refusal(() => life.move(stateOf(to), 'the call'));
          expect(e.code).toBe('ERR_SHARDGRAM_STATE');
          expect(e.state).toBe(from);
          expect(e.message).toBe(`the call refused: the service is ${describeState(before)}`);
          expect(life.state).toBe(before);
          expect(moves).toEqual([]);
        });
      }
    }
  }

  it('names what each state carries in its refusal', () => {
    expect(describeState({ name: 'taking-over', from: 7, sole: true })).toBe('taking over from pid 7 (which died)');
    expect(describeState({ name: 'taking-over', from: 7, sole: false })).toBe('taking over from pid 7');
    expect(describeState({ name: 'changing', change: 'reload' })).toBe('in a reload');
    expect(describeState({ name: 'handing-over', to: 8 })).toBe('handing over to pid 8');
    expect(describeState({ name: 'handed-over', to: 8 })).toBe('handed over to pid 8');
  });

  it('require() passes in the states named and refuses in every other, naming it', () => {
    for (const name of NAMES) {
      const life = lifeIn(name);
      const allowed = name === 'running' || name === 'changing';
      if (allowed) expect(() => life.require('takeover', 'running', 'changing')).not.toThrow();
      else {
        const e = refusal(() => life.require('takeover', 'running', 'changing'));
        expect(e.code).toBe('ERR_SHARDGRAM_STATE');
        expect(e.state).toBe(name);
      }
    }
  });

  it('serves in running and changing only', () => {
    for (const name of NAMES) expect(lifeIn(name).serving, name).toBe(name === 'running' || name === 'changing');
  });
});

describe('a Supervisor called in the wrong state', () => {
  let sup: Supervisor | undefined;
  afterEach(async () => {
    await sup?.stop();
    sup = undefined;
  });

  const refusedWith = (p: Promise<unknown>): Promise<PublicError> => rejectedWith(PublicError, p);

  it('refuses resize() and reload() before start(), and start() after stop(), naming the state', async () => {
    sup = new Supervisor({ app: 'discard', port: 0, workers: 1, log: () => undefined });
    for (const [p, call] of [
      [sup.resize(2), 'resize()'],
      [sup.reload(), 'reload()'],
    ] as const) {
      const e = await refusedWith(p);
      expect(e.code).toBe('ERR_SHARDGRAM_STATE');
      expect(e.state).toBe('new');
      expect(e.message).toBe(`${call} refused: the service is new`);
    }
    await sup.stop();
    const e = await refusedWith(sup.start());
    expect(e.code).toBe('ERR_SHARDGRAM_STATE');
    expect(e.state).toBe('stopped');
    expect(e.message).toBe('start() refused: the service is stopped');
  });

  it('refuses a second start() while running, and resize() once stopped', async () => {
    sup = new Supervisor({ app: 'discard', port: 0, workers: 1, log: () => undefined });
    await sup.start();
    const again = await refusedWith(sup.start());
    expect(again.code).toBe('ERR_SHARDGRAM_STATE');
    expect(again.state).toBe('running');
    expect(again.message).toBe('start() refused: the service is running');
    await sup.stop();
    const e = await refusedWith(sup.resize(2));
    expect(e.code).toBe('ERR_SHARDGRAM_STATE');
    expect(e.state).toBe('stopped');
  });
});
