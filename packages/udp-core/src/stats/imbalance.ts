/**
 * Detects a group whose traffic piles onto one worker — what the kernel hash does
 * to a few busy source ports — from the per-worker counts over a sliding window.
 */
import { DEFAULTS } from '../defaults.js';

/** Defaults and ranges: DEFAULTS and LIMITS' `imbalanceWindowMs`, `imbalanceMinDatagrams`, `imbalanceSustainMs` (defaults.ts). */
export interface ImbalanceOptions {
  /** Length of the sliding window (ms, 1000–3600000). Default 10 s. */
  windowMs?: number;
  /** Fewest datagrams in the window worth judging (1–1000000000). Default 1000. */
  minDatagrams?: number;
  /** How long the imbalance must last before it is reported (ms, 0–3600000). Default 5 s. */
  sustainMs?: number;
}

export interface ImbalanceState {
  detected: boolean;
  /** Worker with the largest share over the window (when detected). */
  worker?: number;
  /** Its share over the window (0..1). */
  share?: number;
  /** The share an even split would give (1/N). */
  evenShare: number;
  /** Share at or above which a worker counts as overloaded. */
  threshold: number;
  since?: string;
  advice?: string;
  /** The overloaded worker's top sender and its share of the datagrams counted by the service's sketches. */
  topSender?: { sender: string; count: number; share: number };
  /** One line for people: "worker 2 holds 61%: 10.0.0.5:8125 alone sent 55%; use --policy random". */
  message?: string;
}

interface Sample {
  at: number;
  counts: number[];
}

export class ImbalanceDetector {
  private readonly windowMs: number;
  private readonly minDatagrams: number;
  private readonly sustainMs: number;
  private samples: Sample[] = [];
  private overSince: number | undefined;
  private state: ImbalanceState = { detected: false, evenShare: 1, threshold: 1 };

  constructor(opts: ImbalanceOptions = {}) {
    this.windowMs = opts.windowMs ?? DEFAULTS.imbalanceWindowMs;
    this.minDatagrams = opts.minDatagrams ?? DEFAULTS.imbalanceMinDatagrams;
    this.sustainMs = opts.sustainMs ?? DEFAULTS.imbalanceSustainMs;
  }

  /** Forgets the history (the group changed size or policy). */
  reset(): void {
    this.samples = [];
    this.overSince = undefined;
    this.state = { detected: false, evenShare: 1, threshold: 1 };
  }

  /**
   * Feeds cumulative per-worker counts; returns the new state and whether it just
   * became detected (to log once).
   */
  observe(at: number, counts: readonly number[], advice: string): { state: ImbalanceState; changed: boolean } {
    const n = counts.length;
    this.samples.push({ at, counts: [...counts] });
    while (this.samples.length > 2 && this.samples[1]!.at <= at - this.windowMs) this.samples.shift();
    const first = this.samples[0]!;
    const even = n > 0 ? 1 / n : 1;
    // Halfway between an even split and everything on one worker.
    const threshold = even + (1 - even) / 2;
    const was = this.state.detected;
    let worker = -1;
    let share = 0;
    let total = 0;
    if (first.counts.length === n && n > 1) {
      const delta = counts.map((c, i) => c - (first.counts[i] ?? 0));
      total = delta.reduce((a, b) => a + b, 0);
      delta.forEach((d, i) => {
        if (total > 0 && d / total > share) {
          share = d / total;
          worker = i;
        }
      });
    }
    const over = total >= this.minDatagrams && share >= threshold;
    if (!over) this.overSince = undefined;
    else this.overSince ??= at;
    const detected = over && at - (this.overSince ?? at) >= this.sustainMs;
    this.state = detected
      ? { detected, worker, share, evenShare: even, threshold, since: new Date(this.overSince!).toISOString(), advice }
      : { detected: false, evenShare: even, threshold };
    return { state: this.state, changed: detected !== was };
  }

  get current(): ImbalanceState {
    return this.state;
  }
}
