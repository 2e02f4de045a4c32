/**
 * The Graphite output's replay window. Graphite plaintext has no acknowledgement: an
 * attempt counts as delivered when the server closed its side after reading it all,
 * yet a server that stops right then (carbon-cache on SIGTERM) may lose what it had
 * read and not yet stored. So the text of the attempts delivered in the last
 * `windowMs` is kept (at most `maxLines` lines: the oldest go first), and after a
 * failed attempt (the server refused, reset or stalled: it went away) the next
 * successful connection first sends again what was delivered within `windowMs` before
 * the first failure of that outage, then the batch it carries.
 *
 * Graphite stores one point per (metric, timestamp): a line sent twice is stored once,
 * so a replay costs traffic, never a wrong value. Every line sent again is counted
 * (`replayed`), so nothing reaches the server twice without a counter saying so.
 * `windowMs` 0 turns it off.
 */

export interface ReplayOptions {
  /** How far back from the first failure delivered text is sent again (0: never). */
  windowMs: number;
  /** Most lines kept in the window (the oldest delivered go first). */
  maxLines: number;
  now?: () => number;
}

interface Sent {
  text: string;
  lines: number;
  at: number;
}

export class ReplayWindow {
  private window: Sent[] = [];
  private windowLines = 0;
  /** What the next successful attempt sends first (taken from the window at the first failure of an outage). */
  private pending: Sent[] = [];
  private pendingLines = 0;
  private failing = false;
  private readonly now: () => number;
  /** Lines sent again after a failure, delivered. */
  replayed = 0;

  constructor(private readonly o: ReplayOptions) {
    this.now = o.now ?? Date.now;
  }

  /** The text to send before the batch at this attempt (empty when nothing is to be replayed). */
  prefix(): string {
    return this.pending.length ? this.pending.map((s) => s.text).join('') : '';
  }

  /** The attempt that carried `prefix()` + `text` (`lines` lines) was delivered. */
  delivered(text: string, lines: number): void {
    const now = this.now();
    this.replayed += this.pendingLines;
    const sent = this.pending.length ? this.prefix() + text : text;
    const sentLines = this.pendingLines + lines;
    this.pending = [];
    this.pendingLines = 0;
    this.failing = false;
    if (this.o.windowMs <= 0) return;
    // Replayed lines go back into the window: the server may lose them again.
    this.window.push({ text: sent, lines: sentLines, at: now });
    this.windowLines += sentLines;
    this.prune(now);
  }

  /** An attempt failed: at the first failure of an outage, what was delivered within `windowMs` before it is kept for the next success. */
  failed(): void {
    if (this.failing) return;
    this.failing = true;
    if (this.o.windowMs <= 0) return;
    this.prune(this.now());
    this.pending = this.window;
    this.pendingLines = this.windowLines;
    this.window = [];
    this.windowLines = 0;
  }

  /** Lines held (window and pending replay). */
  held(): number {
    return this.windowLines + this.pendingLines;
  }

  private prune(now: number): void {
    let drop = 0;
    let lines = this.windowLines;
    while (drop < this.window.length && (now - this.window[drop]!.at > this.o.windowMs || lines > this.o.maxLines)) {
      lines -= this.window[drop]!.lines;
      drop++;
    }
    if (drop) {
      this.window = this.window.slice(drop);
      this.windowLines = lines;
    }
  }
}
