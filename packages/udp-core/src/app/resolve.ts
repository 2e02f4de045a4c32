/**
 * Turns an app name from the command line into a module URL a worker can import.
 *
 * A bare name is looked up in this order:
 *  1. the apps built into this package (`discard`, `echo`);
 *  2. packages that declare shardgram apps in their package.json, found the way Node finds a
 *     package (each `node_modules` from the user's working directory up, then beside this
 *     package): first `shardgram-app-<name>`, then `@shardgram/examples`. A package declares
 *     its apps as a map of app name → module path inside the package:
 *
 *       "shardgram": { "apps": { "statsd": "./dist/statsd.js" } }
 *
 * Anything starting with `.` or `/` is a path to a module (from the working directory), and a
 * `file:` URL is taken as it is.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve as resolvePath, isAbsolute, parse as parsePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ShardgramError, describeError } from '../errors.js';

/** Apps that ship in this package (each is `./<name>.js` beside this file). */
export const BUILTIN_APPS: readonly string[] = ['discard', 'echo'];

/** The packages asked for a bare app name that is not built in, in order. */
export function appPackageNames(app: string): string[] {
  return [`shardgram-app-${app}`, '@shardgram/examples'];
}

/** A package that was found, with the apps its package.json declares. */
export interface AppPackage {
  name: string;
  dir: string;
  apps: Readonly<Record<string, string>>;
}

const APP_NAME = /^[a-z0-9][a-z0-9._-]*$/i;

export function resolveApp(app: string, cwd = process.cwd()): string {
  if (app.startsWith('file:')) return app;
  if (app.startsWith('.') || isAbsolute(app)) {
    const path = resolvePath(cwd, app);
    if (!existsSync(path)) {
      throw new ShardgramError('ERR_SHARDGRAM_APP', `app module ${path} does not exist. Built-in apps: ${BUILTIN_APPS.join(', ')}.`);
    }
    return pathToFileURL(path).href;
  }
  if (BUILTIN_APPS.includes(app)) return new URL(`./builtin/${app}.js`, import.meta.url).href;
  const tried: string[] = [];
  if (APP_NAME.test(app)) {
    for (const name of appPackageNames(app)) {
      const pkg = findAppPackage(name, cwd);
      if (!pkg) {
        tried.push(`${name} (not installed)`);
        continue;
      }
      const entry = pkg.apps[app];
      if (entry !== undefined) return appModuleUrl(pkg, app, entry);
      const has = Object.keys(pkg.apps);
      tried.push(`${name} (installed; ${has.length ? `has ${has.join(', ')}` : 'declares no apps'})`);
    }
  }
  throw new ShardgramError(
    'ERR_SHARDGRAM_APP',
    `unknown app "${app}". Built-in apps: ${BUILTIN_APPS.join(', ')}.` +
      (tried.length ? ` Looked in node_modules from ${cwd} up, and beside @shardgram/udp-core, for: ${tried.join(', ')}.` : '') +
      ` Install a package that provides it${APP_NAME.test(app) ? ` (e.g. npm install shardgram-app-${app})` : ''},` +
      ' or give the path of a module (./my-app.js) whose default export is the app.',
  );
}

/**
 * Finds package `name` as Node would for a module in `cwd` (each node_modules from there up to
 * the root), then beside this package (a global install, or a workspace), and reads the apps it
 * declares. Undefined when it is not installed.
 */
export function findAppPackage(name: string, cwd = process.cwd()): AppPackage | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const start of [resolvePath(cwd), here]) {
    for (let dir = start; ; dir = dirname(dir)) {
      const pkgDir = join(dir, 'node_modules', name);
      const manifest = join(pkgDir, 'package.json');
      if (existsSync(manifest)) return { name, dir: pkgDir, apps: declaredApps(manifest) };
      if (dir === parsePath(dir).root) break;
    }
  }
  return undefined;
}

function declaredApps(manifest: string): Record<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(manifest, 'utf8'));
  } catch (err) {
    throw new ShardgramError('ERR_SHARDGRAM_APP', `cannot read ${manifest}: ${describeError(err)}`);
  }
  const apps = field(field(json, 'shardgram'), 'apps');
  if (apps === undefined) return {};
  if (typeof apps !== 'object' || apps === null || Array.isArray(apps)) {
    throw new ShardgramError('ERR_SHARDGRAM_APP', `${manifest}: "shardgram.apps" must map app names to module paths, e.g. { "myapp": "./dist/myapp.js" }`);
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(apps)) {
    if (typeof value !== 'string')
      throw new ShardgramError('ERR_SHARDGRAM_APP', `${manifest}: "shardgram.apps.${key}" must be a module path such as "./dist/${key}.js"`);
    out[key] = value;
  }
  return out;
}

function field(v: unknown, key: string): unknown {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>)[key] : undefined;
}

function appModuleUrl(pkg: AppPackage, app: string, entry: string): string {
  const path = resolvePath(pkg.dir, entry);
  const rel = relative(pkg.dir, path);
  if (!entry.startsWith('./') || rel.startsWith('..') || isAbsolute(rel)) {
    throw new ShardgramError('ERR_SHARDGRAM_APP', `${pkg.name} declares app "${app}" as "${entry}"; it must be a path inside the package starting with ./`);
  }
  if (!existsSync(path)) {
    throw new ShardgramError('ERR_SHARDGRAM_APP', `${pkg.name} declares app "${app}" as ${entry}, but ${path} does not exist (is the package built?)`);
  }
  return pathToFileURL(path).href;
}
