/**
 * One style for a bad option, in core and in apps: `<name> must be <expected>; got
 * <value>`, where the name is the flag on the command line (`--keep`,
 * `--app-option keep`) and the option key through the API (`keep`).
 */
import { ShardgramError } from '../errors.js';

/** Thrown by a value parser: says what was expected; the caller names the option. */
export class OptionValueError extends Error {
  /**
   * @param expected what the value must be, e.g. `a whole number from 1 to 1000`
   * @param shown how to show the value given (default: the text, quoted)
   */
  constructor(
    readonly expected: string,
    readonly shown?: string,
  ) {
    super(`must be ${expected}`);
    this.name = 'OptionValueError';
  }
}

/** The one-line message of a bad value. */
export function optionMessage(name: string, text: string, err: OptionValueError): string {
  return `${name} must be ${err.expected}; got ${err.shown ?? JSON.stringify(text)}`;
}

/** A ShardgramError (ERR_SHARDGRAM_INVALID_ARG) for a bad value of option `key`, called `name` in the message. */
export function badOption(key: string, name: string, text: string, err: OptionValueError): ShardgramError {
  return new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', optionMessage(name, text, err), { option: key });
}

/** Runs a value parser, turning its OptionValueError into a named ShardgramError. */
export function parseNamed<T>(key: string, name: string, text: string, parse: (text: string) => T): T {
  try {
    return parse(text);
  } catch (err) {
    if (err instanceof OptionValueError) throw badOption(key, name, text, err);
    throw err;
  }
}
