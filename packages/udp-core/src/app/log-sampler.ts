/**
 * A sampled log for events that can come by the million (a handler that throws, a
 * bad input line): the first few are logged with their detail, then one line per
 * `every` with the count so far, so a flood neither fills the log nor goes unseen.
 *
 *   const bad = sampledLog(ctx.log, 'bad line');
 *   bad.note(() => `${JSON.stringify(line)}: ${reason}`);
 *
 *   bad line #1: "x|q": unknown type "q"
 *   …
 *   bad line #5: "y": no ":" (further ones: one line per 1000, with the count)
 *   bad line #1000 (995 not logged since #5): "z": no value
 *
 * The detail usually carries what came from the network (the line, the reason it is
 * bad), so it is escaped (`escapeText`): an escape sequence in a datagram is shown, not
 * obeyed by the terminal reading the log, and a line break in it is shown as `\n`, so
 * that it cannot forge a log line of its own. With `keepLines` (for a stack trace) the
 * first few keep their line breaks; the sampled ones are cut to their first line.
 */
import { escapeText } from './escape-text.js';

export interface SampledLogOptions {
  /** Occurrences logged with their detail before sampling starts (default 5). */
  first?: number;
  /** After those, one line per this many (default 1000). */
  every?: number;
  /**
   * Keep the line breaks of the first few details (a stack trace: text of the process's
   * own); other controls are still escaped. Default false: every detail on one line.
   */
  keepLines?: boolean;
}

export interface SampledLog {
  /** Counts one occurrence; `detail` is only called when a line is written. */
  note(detail: () => string): void;
  /** Occurrences so far. */
  readonly count: number;
}

/** Detail of a sampled line: its first line only (a stack trace is for the first few). */
function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return i < 0 ? s : s.slice(0, i);
}

export function sampledLog(log: (line: string) => void, what: string, options: SampledLogOptions = {}): SampledLog {
  const first = options.first ?? 5;
  const every = options.every ?? 1000;
  const keepLines = options.keepLines === true;
  if (!Number.isInteger(first) || first < 0) throw new RangeError(`first must be a whole number; got ${first}`);
  if (!Number.isInteger(every) || every < 1) throw new RangeError(`every must be a whole number of at least 1; got ${every}`);
  let count = 0;
  let lastLogged = 0;
  return {
    get count() {
      return count;
    },
    note(detail) {
      count++;
      if (count <= first) {
        lastLogged = count;
        log(
          `${what} #${count}: ${escapeText(detail(), { lines: keepLines })}${count === first ? ` (further ones: one line per ${every}, with the count)` : ''}`,
        );
      } else if (count % every === 0) {
        log(`${what} #${count} (${count - lastLogged - 1} not logged since #${lastLogged}): ${escapeText(firstLine(detail()))}`);
        lastLogged = count;
      }
    },
  };
}
