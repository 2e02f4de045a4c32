/** The `shardgram` command: dispatch, help, and errors as one line. */
import { readFileSync } from 'node:fs';
import { ShardgramError, describeError } from '../errors.js';
import { UsageError } from './args.js';
import { DEMO_USAGE, demo } from './demo.js';
import { LOAD_USAGE, load } from './load.js';
import { SERVE_USAGE, serve } from './serve.js';
import { SCALE_USAGE, scale } from './scale.js';
import { TOP_USAGE, top } from './top.js';

const USAGE = `Usage: shardgram <command> [options]

Spreads a UDP port's datagrams over worker processes with SO_REUSEPORT, and
shows how evenly and how losslessly it did.

Commands:
  serve <app>   run an app (echo, discard, an installed app package, or your module), one worker
                per socket; --takeover upgrades a running one without loss
  demo          start an echo service, send a burst from many ports, show the split
  load          send a bounded burst of probes to an echo service and report loss and RTT
  scale         grow or shrink a running service (through its owner-only control socket)
  top           watch a running service live: workers, shares, rates, top senders
  help [cmd]    show help for a command

Run \`shardgram <command> --help\` for a command's options; \`shardgram --version\` for the version.
`;

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; usage: string }> = {
  serve: { run: serve, usage: SERVE_USAGE },
  demo: { run: demo, usage: DEMO_USAGE },
  load: { run: load, usage: LOAD_USAGE },
  scale: { run: scale, usage: SCALE_USAGE },
  top: { run: top, usage: TOP_USAGE },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === undefined || cmd === '--help' || cmd === '-h') {
      process.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
    }
    if (cmd === '--version' || cmd === '-v') {
      process.stdout.write(`${version()}\n`);
      return 0;
    }
    if (cmd === 'help') {
      const c = rest[0] ? COMMANDS[rest[0]] : undefined;
      if (c) return await c.run(['--help']); // the same text as `<cmd> --help` (serve's lists the apps it can load)
      process.stdout.write(USAGE);
      return 0;
    }
    const c = COMMANDS[cmd];
    if (!c) throw new UsageError(`unknown command "${cmd}"`, USAGE);
    return await c.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`shardgram: ${err.message}\n\n${err.usage}`);
      return 2;
    }
    if (err instanceof ShardgramError) {
      // The library names its options in camelCase; on the command line they are flags.
      const o = err.code === 'ERR_SHARDGRAM_INVALID_ARG' ? err.option : undefined;
      const message =
        o && /^[a-z][A-Za-z]*$/.test(o) && err.message.startsWith(o)
          ? `--${o.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}${err.message.slice(o.length)}`
          : err.message;
      process.stderr.write(`shardgram: ${message}\n`);
      return err.code === 'ERR_SHARDGRAM_INVALID_ARG' ? 2 : 1;
    }
    process.stderr.write(`shardgram: unexpected error: ${describeError(err, true)}\n`);
    return 1;
  }
}
