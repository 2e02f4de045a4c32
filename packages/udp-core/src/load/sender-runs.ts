/**
 * Which source socket sent each probe of the native sender: it sends runs of
 * consecutive sequence numbers, one per sendmmsg call, each from one socket (a run
 * from the same socket as the one before extends it). Kept to put a lost probe down
 * to the worker that served its sender.
 */
export class SenderRuns {
  private starts = new Uint32Array(1024);
  private senders = new Uint16Array(1024);
  private runs = 0;

  /** Probes from `first` on were sent by socket `sender`. */
  record(first: number, sender: number): void {
    if (this.runs > 0 && this.senders[this.runs - 1] === sender) return;
    if (this.runs === this.starts.length) {
      const starts = new Uint32Array(this.runs * 2);
      starts.set(this.starts);
      this.starts = starts;
      const senders = new Uint16Array(this.runs * 2);
      senders.set(this.senders);
      this.senders = senders;
    }
    this.starts[this.runs] = first;
    this.senders[this.runs] = sender;
    this.runs++;
  }

  /** The sender of a probe, for sequence numbers asked in increasing order. */
  inOrder(): (seq: number) => number {
    let run = 0;
    return (seq) => {
      while (run + 1 < this.runs && this.starts[run + 1]! <= seq) run++;
      return this.senders[run]!;
    };
  }
}
