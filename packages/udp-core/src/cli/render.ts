/** Terminal output: bars, tables, a progress line. Plain text when not on a TTY. */

export function bar(fraction: number, width: number): string {
  const f = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0));
  const eighths = Math.round(f * width * 8);
  const full = Math.floor(eighths / 8);
  const part = eighths % 8;
  return ('█'.repeat(full) + (part ? ' ▏▎▍▌▋▊▉'[part] : '')).padEnd(width, ' ');
}

export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function pct(x: number, digits = 1): string {
  return `${(x * 100).toFixed(digits)}%`;
}

/** Redraws a block of lines in place on a TTY; on anything else, prints only what `plain` returns. */
export class LiveBlock {
  private lines = 0;
  constructor(private readonly out: NodeJS.WriteStream) {}

  get tty(): boolean {
    return Boolean(this.out.isTTY);
  }

  draw(text: string): void {
    if (!this.tty) return;
    const up = this.lines ? `\x1b[${this.lines}F` : '';
    const body = text
      .split('\n')
      .map((l) => `${l}\x1b[K`)
      .join('\n');
    this.out.write(`${up}${body}\n`);
    this.lines = text.split('\n').length;
  }

  /** Leaves the last drawing on screen; further output goes below it. */
  done(): void {
    this.lines = 0;
  }
}

export function progressLine(label: string, done: number, total: number, extra = ''): string {
  const f = total > 0 ? done / total : 1;
  return `${label} [${bar(f, 30)}] ${pct(f, 0).padStart(4)} ${done}/${total}${extra ? `  ${extra}` : ''}`;
}
