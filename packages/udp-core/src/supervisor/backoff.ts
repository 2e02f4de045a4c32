/**
 * Crash backoff, as a pure function: how long to wait before restarting a worker
 * that exited unasked, given how long it lived and how many such exits came in a row.
 */

/** A process that lived shorter than this counts toward a crash streak. */
export const CRASH_WINDOW_MS = 5000;
/** The longest wait between two starts of a crashing worker. */
export const MAX_BACKOFF_MS = 10_000;
/** From this many quick exits in a row, the log says "crash loop". */
export const CRASH_LOOP_STREAK = 3;

export interface RestartDecision {
  /** Quick exits in a row, this one included. */
  streak: number;
  /** Wait before the next start. */
  delayMs: number;
  crashLoop: boolean;
}

/**
 * The first exit restarts at once; each further quick exit waits twice as long as
 * the one before (100 ms, 200 ms, 400 ms, … up to 10 s). A process that lived past
 * the crash window starts a new streak.
 */
export function nextRestart(previousStreak: number, livedMs: number): RestartDecision {
  const streak = livedMs < CRASH_WINDOW_MS ? previousStreak + 1 : 1;
  const delayMs = streak <= 1 ? 0 : Math.min(100 * 2 ** (streak - 2), MAX_BACKOFF_MS);
  return { streak, delayMs, crashLoop: streak >= CRASH_LOOP_STREAK };
}
