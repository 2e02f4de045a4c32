/**
 * Loading an app module and running its hooks with their errors isolated: a hook
 * that throws (or rejects) is logged, never allowed to take the service down.
 * Used by the supervisor for the app's supervisor side and by every worker.
 */
import { ShardgramError, describeError } from '../errors.js';
import type { PromFamily } from '../stats/prom-text.js';
import type { AppDefaults, AppModule, AppSupervisorContext, AppSupervisorHooks } from './shard-socket.js';

export { describeError };

/** An app called process.exit() while it loaded or started (see withoutExit). */
export class AppEndedProcessError extends ShardgramError {
  constructor(name: string, doing: string, code: string) {
    super(
      'ERR_SHARDGRAM_APP',
      `app ${name} called process.exit(${code}) while ${doing}: an app must not end the process (the service would end with it). ` +
        'To refuse to start, throw an error instead.',
    );
  }
}

/**
 * Runs `fn` (an app's loading or starting) with `process.exit` turned into an error:
 * an app that ends the process there would end the service with it, silently and
 * with its exit code (0 looks like success). Throws ERR_SHARDGRAM_APP naming the app,
 * what it was doing and the code it asked for, also when the app caught the throw.
 */
export async function withoutExit<T>(name: string, doing: string, fn: () => Promise<T>): Promise<T> {
  const exit = process.exit;
  let asked: { code: string } | undefined;
  const refused = (): AppEndedProcessError => new AppEndedProcessError(name, doing, asked?.code ?? '');
  process.exit = ((code?: string | number | null) => {
    asked = { code: code === undefined ? '' : String(code) };
    throw refused();
  }) as typeof process.exit;
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    if (asked) throw refused();
    throw err;
  } finally {
    process.exit = exit;
  }
  if (asked) throw refused();
  return result;
}

/** Imports the app module at `url`; `name` is how the user called it. Throws ERR_SHARDGRAM_APP. */
export async function importApp(url: string, name: string): Promise<AppModule> {
  let mod: Partial<AppModule> & Record<string, unknown>;
  try {
    mod = await withoutExit(name, 'it loaded', async () => (await import(url)) as typeof mod);
  } catch (err) {
    if (err instanceof AppEndedProcessError) throw err;
    throw new ShardgramError('ERR_SHARDGRAM_APP', `cannot load app ${name} (${url}): ${describeError(err)}`);
  }
  if (typeof mod.default !== 'function') throw new ShardgramError('ERR_SHARDGRAM_APP', `app ${name} has no default export function (see defineApp)`);
  if (mod.supervisor !== undefined && typeof mod.supervisor !== 'function')
    throw new ShardgramError('ERR_SHARDGRAM_APP', `app ${name}: its "supervisor" export must be a function (see defineAppSupervisor)`);
  return mod as AppModule;
}

/** Runs `fn`; a throw or a rejection is logged as `<what> threw: …` and swallowed. */
export function guarded<T>(log: (line: string) => void, what: string, fn: () => T): T | undefined {
  try {
    const r = fn();
    if (r instanceof Promise) {
      return r.catch((err: unknown) => {
        log(`${what} threw: ${describeError(err, true)}`);
        return undefined;
      }) as T;
    }
    return r;
  } catch (err) {
    log(`${what} threw: ${describeError(err, true)}`);
    return undefined;
  }
}

/** The app's supervisor side, in the supervisor process. */
export class AppHost {
  private hooks: AppSupervisorHooks = {};
  defaults: AppDefaults = {};

  constructor(
    readonly url: string,
    readonly name: string,
    private readonly log: (line: string) => void,
  ) {}

  /** Loads the module (failing early on a bad one) and starts its supervisor side. */
  async load(context: () => AppSupervisorContext): Promise<AppDefaults> {
    const mod = await importApp(this.url, this.name);
    this.defaults = mod.defaults ?? {};
    if (mod.supervisor) {
      try {
        this.hooks = await withoutExit(this.name, 'its supervisor side started', async () => mod.supervisor!(context()));
      } catch (err) {
        if (err instanceof ShardgramError) throw err;
        throw new ShardgramError('ERR_SHARDGRAM_APP', `app ${this.name} could not start: ${describeError(err)}`);
      }
    }
    return this.defaults;
  }

  /** The options workers get: the supervisor side's `workerOptions`, else `options` (the command line's). */
  workerOptions(options: Readonly<Record<string, string>>): Record<string, string> {
    return { ...(this.hooks.workerOptions ?? options) };
  }

  message(index: number, message: unknown): void {
    guarded(this.log, 'app message hook', () => this.hooks.message?.(index, message));
  }

  metrics(): string {
    return guarded(this.log, 'app metrics hook', () => this.hooks.metrics?.()) ?? '';
  }

  /** The app's families: [] without a metrics hook, undefined when it has only the text one. */
  metricFamilies(): PromFamily[] | undefined {
    if (this.hooks.metricFamilies) return guarded(this.log, 'app metricFamilies hook', () => this.hooks.metricFamilies?.()) ?? [];
    return this.hooks.metrics ? undefined : [];
  }

  async stop(): Promise<void> {
    await guarded(this.log, 'app stop hook', () => this.hooks.stop?.());
  }
}
