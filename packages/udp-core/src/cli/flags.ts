/**
 * A command's flags, declared once: each flag's short name, value label and help text,
 * from which come both its parseArgs options and the "Options:" section of its usage
 * (laid out by the same formatter as apps' options, app/option-help.ts).
 */
import type { ParseArgsConfig } from 'node:util';
import { formatOptionRows } from '../app/option-help.js';

/** parseArgs' options. */
export type Options = NonNullable<ParseArgsConfig['options']>;

export interface CommandFlag {
  /** One-letter alias (`-p`). */
  short?: string;
  /** The value's label in the help (`P`, `SIZE`, `MS`); a flag without one is a switch. */
  value?: string;
  /** Repeatable: its values are gathered in a list. */
  multiple?: true;
  /** The help; lines after the first continue under the help column. */
  help: string;
}

/**
 * A flag the command no longer has: still parsed (with its value), so that giving it is
 * refused with `refusal`, which says what to do instead; not in the help.
 */
export interface RetiredFlag {
  short?: string;
  value?: string;
  refusal: string;
}

/** A command's flags by long name, in help order. */
export type FlagTable = Readonly<Record<string, CommandFlag | RetiredFlag>>;

/** The help flag every command has (parse() accepts it everywhere). */
export const HELP_FLAG: CommandFlag = { short: 'h', help: 'show this help' };

/** Widest left column of a command's options (longer flags overflow it). */
const LEFT_WIDTH = 22;

function isRetired(f: CommandFlag | RetiredFlag): f is RetiredFlag {
  return 'refusal' in f;
}

/** The table's parseArgs options (its retired flags included, to be refused by name). */
export function optionsOf(table: FlagTable): Options {
  const out: Options = {};
  for (const [name, f] of Object.entries(table)) {
    out[name] = {
      type: f.value === undefined ? 'boolean' : 'string',
      ...(f.short !== undefined ? { short: f.short } : {}),
      ...('multiple' in f && f.multiple ? { multiple: true } : {}),
    };
  }
  return out;
}

/** The flags the help shows, with their table entries. */
export function shownFlags(table: FlagTable): [name: string, flag: CommandFlag][] {
  return Object.entries(table).flatMap(([name, f]): [string, CommandFlag][] => (isRetired(f) ? [] : [[name, f]]));
}

/** The "Options:" section: one row per shown flag, `-p, --port P` then its help. */
export function flagsHelp(table: FlagTable): string {
  const rows = shownFlags(table).map(
    ([name, f]) => [`${f.short !== undefined ? `-${f.short}, ` : '    '}--${name}${f.value !== undefined ? ` ${f.value}` : ''}`, f.help] as const,
  );
  return `Options:\n${formatOptionRows(rows, { maxWidth: LEFT_WIDTH }).join('\n')}\n`;
}

/** A command's usage: what comes before its options, the options, and what follows them (if anything). */
export function usageOf(head: string, table: FlagTable, tail?: string): string {
  return `${head}\n${flagsHelp(table)}${tail !== undefined ? `\n${tail}` : ''}`;
}

/** The refusal of the first retired flag given, if any. */
export function retiredGiven(table: FlagTable, values: Record<string, unknown>): string | undefined {
  for (const [name, f] of Object.entries(table)) if (isRetired(f) && values[name] !== undefined) return f.refusal;
  return undefined;
}
