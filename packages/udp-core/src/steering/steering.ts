/**
 * The group's steering as the supervisor uses it: one policy, applied (again)
 * whenever the number of sockets changes.
 */
import { attachSteering, detachSteering } from './attach.js';
import type { SteeringPolicy } from './policies.js';

export type PolicySpec = SteeringPolicy;

export class Steering {
  constructor(readonly policy: SteeringPolicy) {}

  /** Applies the policy to a group of `sockets` members through any member's fd (after bind). */
  apply(fd: number, sockets: number): void {
    if (this.policy.name === 'hash') detachSteering(fd);
    else attachSteering(fd, this.policy, sockets);
  }

  /**
   * Before a shrink to `keep` sockets: steer every new datagram to sockets
   * 0..keep-1. Under `hash` (no program of its own) that takes a program for the
   * moment of the drain: `random` over the sockets that stay, which suspends
   * per-source affinity until the drain ends and the kernel hash is back.
   */
  applyDuringShrink(fd: number, keep: number): void {
    attachSteering(fd, this.policy.name === 'hash' ? { name: 'random' } : this.policy, keep);
  }
}
