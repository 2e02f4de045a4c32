/**
 * The app side of `shardgram serve <app>`: finds the app on the command line, loads
 * its module, and turns its option schema (app-options.ts) into flags, help lines and
 * checked `appOptions` — so core knows no app's flags.
 */
import { parseArgs } from 'node:util';
import { ShardgramError, describeError } from '../errors.js';
import { BUILTIN_APPS, appPackageNames, findAppPackage, resolveApp } from '../app/resolve.js';
import { appOptionsHelp, isAppOptionSchema, parseAppOptions, type AppOptionSchema } from '../app/app-options.js';
import { formatByteSize } from '../app/byte-size.js';
import { formatOptionRows, type OptionRow } from '../app/option-help.js';
import type { AppDefaults } from '../app/shard-socket.js';
import { AppEndedProcessError, withoutExit } from '../app/app-host.js';
import { joinNegativeValues, UsageError, type Options, type Values } from './args.js';

export interface LoadedApp {
  name: string;
  schema: AppOptionSchema;
  description: string | undefined;
  defaults: AppDefaults | undefined;
}

/**
 * The app named on the command line: the first argument that is neither an option
 * nor an option's value. App flags all take a value, so an option serve does not
 * know yet (the app's) is taken to be followed by its value unless written `--k=v`.
 */
export function findAppName(argv: string[], core: Options): string | undefined {
  const { tokens } = parseArgs({ args: joinNegativeValues(argv, core), options: core, strict: false, allowPositionals: true, tokens: true });
  let valueAt = -1;
  for (const t of tokens) {
    if (t.kind === 'option-terminator') continue;
    if (t.kind === 'option') {
      if (!Object.hasOwn(core, t.name) && t.inlineValue !== true) valueAt = t.index + 1;
      continue;
    }
    if (t.index !== valueAt) return t.value;
  }
  return undefined;
}

/** Loads an app module for its schema, description and defaults (the supervisor loads it again, from the module cache). */
export async function loadApp(name: string): Promise<LoadedApp> {
  const url = resolveApp(name);
  let mod: Record<string, unknown>;
  try {
    mod = await withoutExit(name, 'it loaded', async () => (await import(url)) as Record<string, unknown>);
  } catch (err) {
    if (err instanceof AppEndedProcessError) throw err;
    throw new ShardgramError('ERR_SHARDGRAM_APP', `cannot load app ${name} (${url}): ${describeError(err)}`);
  }
  const schema = mod.options ?? {};
  if (!isAppOptionSchema(schema)) {
    throw new ShardgramError('ERR_SHARDGRAM_APP', `app ${name}: its \`options\` export is not an option schema (see defineAppOptions)`);
  }
  return {
    name,
    schema,
    description: typeof mod.description === 'string' ? mod.description : undefined,
    defaults: typeof mod.defaults === 'object' && mod.defaults !== null ? (mod.defaults as AppDefaults) : undefined,
  };
}

/** The built-in apps, and those of the app packages installed here (core names none of them). */
export async function loadBuiltInApps(): Promise<LoadedApp[]> {
  const out: LoadedApp[] = [];
  const packaged = appPackageNames('*')
    .filter((n) => !n.includes('*'))
    .flatMap((n) => Object.keys(findAppPackage(n)?.apps ?? {}));
  for (const name of [...BUILTIN_APPS, ...packaged]) {
    try {
      out.push(await loadApp(name));
    } catch {
      // Not installed (@shardgram/examples is optional): the help names only what runs.
    }
  }
  return out;
}

/** parseArgs options for an app's flags; refuses a flag serve already has. */
export function appFlagOptions(app: LoadedApp, core: Options): Options {
  const out: Options = {};
  for (const [key, o] of Object.entries(app.schema)) {
    if (!o.flag) continue;
    if (Object.hasOwn(core, o.flag) || o.flag === 'help') {
      throw new ShardgramError('ERR_SHARDGRAM_APP', `app ${app.name}: option ${key} declares the flag --${o.flag}, which serve itself has; choose another`);
    }
    out[o.flag] = { type: 'string' };
  }
  return out;
}

/**
 * The app's options from `--app-option k=v` and its flags, checked against its
 * schema before anything starts. An app without a schema gets every pair as given.
 */
export function appOptionsFromArgs(app: LoadedApp, values: Values, usage: string): Record<string, string> {
  const raw: Record<string, string> = {};
  for (const kv of (values['app-option'] as string[] | undefined) ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new UsageError(`--app-option must be KEY=VALUE; got "${kv}"`, usage);
    raw[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const byFlag = new Set<string>();
  for (const [key, o] of Object.entries(app.schema)) {
    const v = o.flag ? values[o.flag] : undefined;
    if (v === undefined) continue;
    if (raw[key] !== undefined) throw new UsageError(`--${o.flag} and --app-option ${key} set the same option; give one`, usage);
    raw[key] = String(v);
    byFlag.add(key);
  }
  if (Object.keys(app.schema).length === 0) return raw;
  const name = (key: string): string => (byFlag.has(key) ? `--${app.schema[key]!.flag}` : `--app-option ${key}`);
  parseAppOptions(app.name, app.schema, raw, { name });
  return raw;
}

/** An unknown flag that belongs to another built-in app gets a message that says so. */
export async function otherAppsFlag(flag: string, app: string): Promise<string | undefined> {
  for (const other of await loadBuiltInApps()) {
    if (other.name === app) continue;
    if (Object.values(other.schema).some((o) => o.flag === flag)) return `--${flag} goes with the ${other.name} app, not ${app}`;
  }
  return undefined;
}

function defaultsText(d: AppDefaults | undefined): string | undefined {
  if (!d) return undefined;
  const parts: string[] = [];
  if (d.policy) parts.push(`--policy ${d.policy.name}`);
  if (d.engine) parts.push(`--engine ${d.engine}`);
  if (d.rcvbuf !== undefined) parts.push(`--rcvbuf ${formatByteSize(d.rcvbuf)}`);
  if (d.maxReadDelayUs !== undefined) parts.push(`--max-read-delay ${d.maxReadDelayUs}`);
  if (d.snapshotIntervalMs !== undefined) parts.push(`a worker snapshot every ${d.snapshotIntervalMs} ms`);
  return parts.length ? `defaults: ${parts.join(', ')}` : undefined;
}

/** The apps part of `serve --help`: each app, its description and defaults, and its options. */
export function appsHelp(apps: readonly LoadedApp[]): string {
  const rows: OptionRow[] = apps.map((a) => {
    const d = defaultsText(a.defaults);
    return [a.name, `${a.description ?? ''}${d ? `\n${d}` : ''}`];
  });
  if (apps.length > 1) rows.push(['./path/to/app.js', 'a module whose default export is a ShardApp (see docs/)']);
  const lines: string[] = ['Apps:', ...formatOptionRows(rows, { maxWidth: 16 })];
  for (const a of apps) {
    if (Object.keys(a.schema).length === 0) continue;
    lines.push('', `${a.name} options (its flags, or --app-option KEY=VALUE; only with ${a.name}):`, ...appOptionsHelp(a.schema));
  }
  return `${lines.join('\n')}\n`;
}
