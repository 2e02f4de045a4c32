/** Turns an app name from the command line into a module URL a worker can import. */
import { existsSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ShardgramError } from '../errors.js';

/** Apps that ship in this package. */
export const CORE_APPS = ['discard'] as const;
/** Apps that ship in @shardgram/examples. */
export const EXAMPLE_APPS = ['echo', 'statsd', 'syslog'] as const;

export function resolveApp(app: string, cwd = process.cwd()): string {
  if ((CORE_APPS as readonly string[]).includes(app)) return new URL(`./${app}.js`, import.meta.url).href;
  if ((EXAMPLE_APPS as readonly string[]).includes(app)) {
    try {
      return import.meta.resolve(`@shardgram/examples/${app}`);
    } catch {
      throw new ShardgramError(
        'ERR_SHARDGRAM_APP',
        `app "${app}" lives in @shardgram/examples, which is not installed here. Run \`npm install @shardgram/examples\`, or give the path of your own app module.`,
      );
    }
  }
  if (app.startsWith('.') || app.startsWith('/')) {
    const path = resolvePath(cwd, app);
    if (!existsSync(path)) {
      throw new ShardgramError('ERR_SHARDGRAM_APP', `app module ${path} does not exist. Built-in apps: ${[...CORE_APPS, ...EXAMPLE_APPS].join(', ')}.`);
    }
    return pathToFileURL(path).href;
  }
  if (app.startsWith('file:')) return app;
  throw new ShardgramError(
    'ERR_SHARDGRAM_APP',
    `unknown app "${app}". Built-in apps: ${[...CORE_APPS, ...EXAMPLE_APPS].join(', ')}; or give a path to a module (./my-app.js) whose default export is the app.`,
  );
}
