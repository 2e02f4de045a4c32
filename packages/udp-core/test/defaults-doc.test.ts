/**
 * docs/defaults.md says what the code does: every default and limit in its tables is
 * the one packages/udp-core/src/defaults.ts holds, and none is missing: the service's
 * (DEFAULTS, LIMITS), the stats server's (STATS_SERVER_DEFAULTS), the load tool's
 * (LOAD_DEFAULTS, LOAD_LIMITS), `shardgram demo`'s (DEMO_DEFAULTS, DEMO_LIMITS) and
 * `shardgram top`'s (TOP_DEFAULTS, TOP_LIMITS), each in its own section.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULTS, DEMO_DEFAULTS, DEMO_LIMITS, LIMITS, LOAD_DEFAULTS, LOAD_LIMITS, STATS_SERVER_DEFAULTS, TOP_DEFAULTS, TOP_LIMITS } from '../src/defaults.js';

const doc = readFileSync(new URL('../../../docs/defaults.md', import.meta.url), 'utf8');

/** The table rows of the section under `heading` (undefined: the part before any `##`), by their first cell (`name`). */
function rows(heading?: string): Map<string, string[]> {
  const parts = doc.split(/^## /m);
  const part = heading === undefined ? parts[0]! : parts.find((p) => p.startsWith(`${heading}\n`));
  expect(part, `docs/defaults.md has a section "## ${heading}"`).toBeDefined();
  const out = new Map<string, string[]>();
  for (const line of part!.split('\n')) {
    const m = /^\| `([A-Za-z]+)` \|(.*)\|$/.exec(line);
    if (m)
      out.set(
        m[1]!,
        m[2]!.split('|').map((c) => c.trim()),
      );
  }
  return out;
}

type Limits = Readonly<Record<string, { readonly min: number; readonly max: number }>>;

/** Every default with its value (first column), every limit with its range (second), and nothing else. */
function expectTable(table: Map<string, string[]>, defaults: Readonly<Record<string, unknown>>, limits: Limits | undefined, where: string): void {
  for (const [name, value] of Object.entries(defaults)) {
    expect(table.has(name), `${name} is missing from ${where}`).toBe(true);
    expect(table.get(name)![0], `${where}: ${name}`).toBe(`\`${String(value)}\``);
  }
  for (const [name, { min, max }] of Object.entries(limits ?? {})) {
    expect(table.has(name), `${name} is missing from ${where}`).toBe(true);
    expect(table.get(name)![1], `${where}: ${name}`).toBe(`${min} – ${max}`);
  }
  for (const name of table.keys()) expect(name in defaults || (limits !== undefined && name in limits), `${name} in ${where} is not in defaults.ts`).toBe(true);
}

describe('docs/defaults.md', () => {
  it('has every default of the service with its value, and every limit with its range', () => {
    expectTable(rows(), DEFAULTS, LIMITS, 'its first table');
  });

  it("has the stats server's defaults", () => {
    expectTable(rows('The stats server'), STATS_SERVER_DEFAULTS, undefined, '"The stats server"');
  });

  it("has the load tool's defaults and ranges", () => {
    expectTable(rows('The load tool'), LOAD_DEFAULTS, LOAD_LIMITS, '"The load tool"');
  });

  it("has the demo's defaults and ranges", () => {
    expectTable(rows('The demo'), DEMO_DEFAULTS, DEMO_LIMITS, '"The demo"');
  });

  it("has top's defaults and ranges", () => {
    expectTable(rows('top'), TOP_DEFAULTS, TOP_LIMITS, '"top"');
  });
});
