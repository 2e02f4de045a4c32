/**
 * Text from the network made safe for a log line or a terminal: the one escaping
 * function every log path and `shardgram top` use.
 *
 * A datagram, an HTTP body or a peer's name may hold bytes a terminal obeys (ESC
 * sequences that retitle the window, move the cursor, rewrite the screen or, on some
 * terminals, answer back into its input), C1 controls, Unicode controls that reorder
 * what a line shows (bidi overrides), or line breaks that forge a log line of their
 * own. Each such character is shown as a visible escape instead:
 *
 *   escapeText('zz\x1b]0;PWNED\x07')  →  'zz\\x1b]0;PWNED\\x07'   (prints as zz\x1b]0;PWNED\x07)
 *   escapeText('a\nb')                →  'a\\nb'
 *   escapeText('a\nb', { lines: true }) → 'a\nb'   (a multi-line entry: a stack trace)
 *
 * A backslash is left as it is, so escaping twice changes nothing: a log line made of
 * escaped parts can go through a sink that escapes again. (So `\x1b` in a log may also
 * be those four characters as sent.)
 */

export interface EscapeTextOptions {
  /**
   * Keep `\n` as a line break (for an entry whose lines are ours, such as a stack
   * trace); everything else is still escaped, `\r` included. Default false: one line.
   */
  lines?: boolean;
}

/**
 * C0 controls and DEL, C1 controls, the line and paragraph separators, the bidi
 * marks, embeddings, overrides and isolates, and UTF-16 halves without their pair.
 */
const UNSAFE =
  /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const UNSAFE_ONE = new RegExp(UNSAFE.source);

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeOne(c: string): string {
  const named = NAMED[c];
  if (named !== undefined) return named;
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** `text` with every character a terminal or a log reader would act on shown as an escape. */
export function escapeText(text: string, options: EscapeTextOptions = {}): string {
  if (!UNSAFE_ONE.test(text)) return text;
  if (options.lines)
    return text
      .split('\n')
      .map((l) => l.replace(UNSAFE, escapeOne))
      .join('\n');
  return text.replace(UNSAFE, escapeOne);
}
