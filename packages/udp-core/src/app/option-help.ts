/**
 * Option help as `shardgram` prints it, for its commands' flags and apps' options
 * alike: the flag and its value on the left, the help in one column on the right. A
 * left side too long for the column is followed by two spaces; a help of several
 * lines continues under the column.
 */

/** One option's help row: `-p, --port P` and `UDP port to bind…` (lines after the first continue under the column). */
export type OptionRow = readonly [left: string, help: string];

export interface OptionRowsLayout {
  /** Before each left side (default two spaces). */
  indent?: string;
  /** Widest the left column gets (default: as wide as the widest left side); longer ones overflow. */
  maxWidth?: number;
}

export function formatOptionRows(rows: readonly OptionRow[], layout: OptionRowsLayout = {}): string[] {
  const indent = layout.indent ?? '  ';
  const width = Math.min(Math.max(0, ...rows.map(([l]) => l.length)) + 2, layout.maxWidth ?? Infinity);
  const under = ' '.repeat(indent.length + width);
  return rows.flatMap(([left, help]) => {
    const [first = '', ...more] = help.split('\n');
    const head = left.length + 2 <= width ? left.padEnd(width) : `${left}  `;
    return [`${indent}${head}${first}`, ...more.map((l) => `${under}${l}`)];
  });
}
