/**
 * Each command's flags table is the source of both its parseArgs options and its
 * usage: every option parseArgs accepts has its row in the "Options:" section (but a
 * retired flag, which is refused with what to do instead), every row and every flag the
 * usage names anywhere is accepted, with a value exactly when its row shows one.
 */
import { describe, expect, it } from 'vitest';
import { UsageError, parse, parseFlags } from '../src/cli/args.js';
import { optionsOf, shownFlags, type FlagTable } from '../src/cli/flags.js';
import { DEMO_FLAGS, DEMO_USAGE } from '../src/cli/demo.js';
import { LOAD_FLAGS, LOAD_USAGE } from '../src/cli/load.js';
import { SCALE_FLAGS, SCALE_USAGE } from '../src/cli/scale.js';
import { SERVE_FLAGS, SERVE_USAGE } from '../src/cli/serve.js';
import { TOP_FLAGS, TOP_USAGE } from '../src/cli/top.js';

const COMMANDS: [name: string, flags: FlagTable, usage: string][] = [
  ['serve', SERVE_FLAGS, SERVE_USAGE],
  ['load', LOAD_FLAGS, LOAD_USAGE],
  ['demo', DEMO_FLAGS, DEMO_USAGE],
  ['scale', SCALE_FLAGS, SCALE_USAGE],
  ['top', TOP_FLAGS, TOP_USAGE],
];

interface Row {
  short: string | undefined;
  name: string;
  value: string | undefined;
}

/** The rows of a usage's "Options:" section: `  -p, --port P  …` or `      --rcvbuf-force  …`. */
function optionRows(usage: string): Row[] {
  const section = usage.split('\nOptions:\n')[1];
  expect(section, 'an Options: section').toBeDefined();
  const rows: Row[] = [];
  for (const line of section!
    .split('\n\n')[0]!
    .split('\n')
    .filter((l) => l !== '')) {
    const m = /^ {2}(?:-(\w), | {4})--([a-z][a-z-]*)(?: ([^\s]+))?(?: |$)/.exec(line);
    if (m) rows.push({ short: m[1], name: m[2]!, value: m[3] });
    else expect(line, 'a continuation line, under the help column').toMatch(/^ {17,}\S/);
  }
  return rows;
}

describe.each(COMMANDS)('shardgram %s: flags and help from one table', (_name, flags, usage) => {
  const options = optionsOf(flags);

  it('every option parseArgs accepts has its row, with its short name and value label', () => {
    const rows = optionRows(usage);
    for (const [name, f] of shownFlags(flags)) {
      const row = rows.find((r) => r.name === name);
      expect(row, `--${name} in the help`).toBeDefined();
      expect(row!.short).toBe(options[name]!.short);
      expect(row!.value !== undefined, `--${name} shows a value`).toBe(options[name]!.type === 'string');
      expect(f.help.trim()).not.toBe('');
    }
    const hidden = Object.keys(options).filter((n) => !rows.some((r) => r.name === n));
    for (const n of hidden) expect(flags[n], `--${n} is accepted but not in the help`).toHaveProperty('refusal');
  });

  it('every row is accepted, long and short, with a value exactly when it shows one', () => {
    const rows = optionRows(usage);
    expect(rows.map((r) => r.name)).toContain('help');
    for (const r of rows) {
      const args = r.value !== undefined ? ['1'] : [];
      expect(parse([`--${r.name}`, ...args], options, usage).values[r.name], `--${r.name}`).toBeDefined();
      if (r.short) expect(parse([`-${r.short}`, ...args], options, usage).values[r.name], `-${r.short}`).toBeDefined();
      // A switch takes no value; a flag with one needs it.
      if (r.value === undefined) expect(() => parse([`--${r.name}=1`], options, usage)).toThrow(UsageError);
      else expect(() => parse([`--${r.name}`], options, usage)).toThrow(UsageError);
    }
  });

  it('every flag the usage names, in its prose too, is one it accepts', () => {
    const named = new Set([...usage.matchAll(/(?<![\w-])--([a-z][a-z-]*)/g)].map((m) => m[1]!));
    for (const n of named) expect(Object.keys(options), `--${n}`).toContain(n);
  });

  it('a retired flag is refused with what to do instead', () => {
    for (const [n, f] of Object.entries(flags)) {
      if (!('refusal' in f)) continue;
      expect(usage).not.toMatch(new RegExp(`--${n}\\b`));
      expect(() => parseFlags([`--${n}`, ...(f.value !== undefined ? ['1'] : [])], flags, usage)).toThrow(f.refusal);
    }
  });
});
