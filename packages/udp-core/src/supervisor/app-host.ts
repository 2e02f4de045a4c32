/**
 * Loading an app module and running its hooks with their errors isolated: a hook
 * that throws (or rejects) is logged, never allowed to take the service down.
 * Used by the supervisor for the app's supervisor side and by every worker.
 */
import { ShardgramError, describeError } from '../errors.js';
import type { PromFamily } from '../prom-text.js';
import type { AppDefaults, AppSupervisor, AppSupervisorContext, AppSupervisorHooks, ShardApp } from '../shard-socket.js';

export interface AppModule {
  default: ShardApp;
  supervisor?: AppSupervisor;
  defaults?: AppDefaults;
}

export { describeError };

/** Imports the app module at `url`; `name` is how the user called it. Throws ERR_SHARDGRAM_APP. */
export async function importApp(url: string, name: string): Promise<AppModule> {
  let mod: Partial<AppModule> & Record<string, unknown>;
  try {
    mod = (await import(url)) as typeof mod;
  } catch (err) {
    throw new ShardgramError('ERR_SHARDGRAM_APP', `cannot load app ${name} (${url}): ${describeError(err)}`);
  }
  if (typeof mod.default !== 'function') throw new ShardgramError('ERR_SHARDGRAM_APP', `app ${name} has no default export function (see defineApp)`);
  if (mod.supervisor !== undefined && typeof mod.supervisor !== 'function') throw new ShardgramError('ERR_SHARDGRAM_APP', `app ${name}: its "supervisor" export must be a function (see defineAppSupervisor)`);
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
        this.hooks = await mod.supervisor(context());
      } catch (err) {
        if (err instanceof ShardgramError) throw err;
        throw new ShardgramError('ERR_SHARDGRAM_APP', `app ${this.name} could not start: ${describeError(err)}`);
      }
    }
    return this.defaults;
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
