/**
 * docs/defaults.md says what the code does: every default and limit in its table is
 * the one packages/udp-core/src/defaults.ts holds, and none is missing.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULTS, LIMITS } from '../src/defaults.js';

const doc = readFileSync(new URL('../../../docs/defaults.md', import.meta.url), 'utf8');

/** The table's rows, by their first cell (`name`). */
function rows(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of doc.split('\n')) {
    const m = /^\| `([A-Za-z]+)` \|(.*)\|$/.exec(line);
    if (m)
      out.set(
        m[1]!,
        m[2]!.split('|').map((c) => c.trim()),
      );
  }
  return out;
}

describe('docs/defaults.md', () => {
  it('has every default with its value, and every limit with its range', () => {
    const table = rows();
    for (const [name, value] of Object.entries(DEFAULTS)) {
      expect(table.has(name), `${name} is missing from docs/defaults.md`).toBe(true);
      expect(table.get(name)![0], name).toBe(`\`${String(value)}\``);
    }
    for (const [name, { min, max }] of Object.entries(LIMITS)) {
      expect(table.has(name), `${name} is missing from docs/defaults.md`).toBe(true);
      expect(table.get(name)![1], name).toBe(`${min} – ${max}`);
    }
    for (const name of table.keys()) expect(name in DEFAULTS || name in LIMITS, `${name} in docs/defaults.md is not in defaults.ts`).toBe(true);
  });
});
