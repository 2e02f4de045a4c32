/**
 * docs/errors.md's table is the list of codes: one row per code of ERROR_CODES
 * (packages/udp-core/src/errors.ts), none missing, none that the code does not have.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../src/errors.js';

const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');

describe('docs/errors.md', () => {
  it('has one row for every code of ERROR_CODES, and no other', () => {
    const rows = doc
      .split('\n')
      .map((l) => /^\| `(ERR_[A-Z_]+)` \|/.exec(l)?.[1])
      .filter((c): c is string => c !== undefined);
    expect([...rows].sort()).toEqual([...ERROR_CODES].sort());
    expect(new Set(rows).size).toBe(rows.length);
  });
});
