/**
 * @shardgram/udp-core/app-options — the kit for an app's options: schemas and their parsers
 * (whole numbers, sizes, text, output files), the flag names, the one size grammar, and the
 * error a parser throws.
 */
export { defineAppOptions, parseAppOptions, wholeNumber, byteSize, textMatching, outputFile, kebabCase } from '../app/app-options.js';
export type { AppOption, AppOptionSchema, AppOptionValues } from '../app/app-options.js';
export { parseByteSize, formatByteSize } from '../app/byte-size.js';
export { OptionValueError } from '../app/option-error.js';
