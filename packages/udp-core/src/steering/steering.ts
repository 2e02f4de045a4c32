/**
 * The group's steering as the supervisor uses it: one policy, applied (again)
 * whenever the number of sockets changes.
 */
import { attachSteering, detachSteering } from './attach.js';
import type { SteeringPolicy } from './policies.js';

export type PolicySpec = SteeringPolicy;

export class Steering {
  /** Whether a program of ours is attached (so `hash` needs a detach, which Linux < 5.3 lacks). */
  private attached = false;

  constructor(readonly policy: SteeringPolicy) {}

  /** Applies the policy to a group of `sockets` members through any member's fd (after bind). */
  apply(fd: number, sockets: number): void {
    if (this.policy.name === 'hash') {
      if (this.attached) detachSteering(fd);
    } else {
      attachSteering(fd, this.policy, sockets);
    }
    this.attached = this.policy.name !== 'hash';
  }

  /**
   * Applies the policy whatever another process attached meanwhile (a new
   * supervisor that gave up a hand-over may have left its own program on the group).
   */
  reset(fd: number, sockets: number): void {
    if (this.policy.name === 'hash') {
      try {
        detachSteering(fd);
      } catch {
        // nothing attached (ENOENT)
      }
      this.attached = false;
    } else this.apply(fd, sockets);
  }

  /**
   * Before a grow from `current` sockets: under `hash` the kernel would hash
   * datagrams onto the new sockets the moment they are bound, before their workers
   * read; pin traffic to the `current` ones until `apply` is called for the new size.
   * Other policies' programs already return indexes below `current`.
   */
  applyBeforeGrow(fd: number, current: number): void {
    if (this.policy.name === 'hash') {
      attachSteering(fd, { name: 'random' }, current);
      this.attached = true;
    }
  }

  /**
   * Before a shrink to `keep` sockets: steer every new datagram to sockets
   * 0..keep-1. Under `hash` (no program of its own) that takes a program for the
   * moment of the drain: `random` over the sockets that stay, which suspends
   * per-source affinity until the drain ends and the kernel hash is back.
   */
  applyDuringShrink(fd: number, keep: number): void {
    attachSteering(fd, this.policy.name === 'hash' ? { name: 'random' } : this.policy, keep);
    this.attached = true;
  }
}
