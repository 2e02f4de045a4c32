/**
 * Go (RE2) regular expressions of statsd_exporter mapping files (`match_type: regex`)
 * as JavaScript RegExps: translated where the two read the same text differently, and
 * refused where JavaScript has no equivalent, so that a mapping never matches other
 * names than it does in statsd_exporter.
 */
import { describeError } from '@shardgram/udp-core';

/**
 * A Go (RE2) expression as a JavaScript RegExp: `(?P<name>` becomes `(?<name>`, `\A`
 * (start of text) becomes `^` (the same without the `m` flag), a `]` first in a class
 * is a literal one as in Go; what has no JavaScript equivalent (inline flags such as
 * `(?i)`, `\z`, `\Q…\E`, `\x{…}`, `\C`, POSIX classes) is refused rather than matched
 * differently.
 */
export function goRegex(src: string, fail: (reason: string) => never): RegExp {
  if (/\(\?[imsU-]+[:)]/.test(src)) fail('inline flags such as (?i) are not supported here; spell the cases out');
  if (/\\[zQEpP]|\[\[:/.test(src)) fail('\\z, \\Q…\\E, \\p{…} and [[:class:]] are not supported here');
  let js = '';
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === '\\' && i + 1 < src.length) {
      const n = src[i + 1]!;
      if (n === 'C') fail('\\C (any byte) is not supported here');
      if (n === 'x' && src[i + 2] === '{') fail('\\x{…} is not supported here; write \\xHH, \\uHHHH or the character itself');
      if (n === 'A') {
        if (inClass) fail('\\A inside a character class is not valid');
        js += '^';
      } else js += c + n;
      i++;
    } else if (c === '[' && !inClass) {
      inClass = true;
      js += c;
      if (src[i + 1] === '^') js += src[++i];
      if (src[i + 1] === ']') {
        js += '\\]';
        i++;
      }
    } else {
      if (c === ']') inClass = false;
      js += c;
    }
  }
  try {
    return new RegExp(js.replace(/\(\?P</g, '(?<'));
  } catch (err) {
    return fail(describeError(err));
  }
}
