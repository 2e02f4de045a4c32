#!/usr/bin/env node
// The shardgram command. Runs the compiled CLI; in a source checkout where the
// TypeScript has not been compiled yet (or changed since), compiles it first.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = dirname(dirname(fileURLToPath(import.meta.url)));

// `serve --takeover`: tell the running service first, before anything slow (see prepare-takeover.ts).
const argv = process.argv.slice(2);
const prepare = join(pkg, 'dist', 'cli', 'prepare-takeover.js');
if (argv[0] === 'serve' && argv.includes('--takeover') && existsSync(prepare)) {
  await (await import('../dist/cli/prepare-takeover.js')).prepareTakeover(argv.slice(1));
}
const src = join(pkg, 'src');
const stamp = join(pkg, 'dist', '.tsbuildinfo');

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

if (existsSync(src) && (!existsSync(stamp) || newest(src) > statSync(stamp).mtimeMs)) {
  let tsc;
  try {
    tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  } catch {
    process.stderr.write('shardgram: dist/ is missing or stale and TypeScript is not installed to build it; run `npm ci` then `npm run build`.\n');
    process.exit(1);
  }
  process.stderr.write('shardgram: compiling TypeScript (first run)…\n');
  const examples = join(pkg, '..', 'examples');
  execFileSync(process.execPath, [tsc, '-b', pkg, ...(existsSync(join(examples, 'tsconfig.json')) ? [examples] : [])], { stdio: 'inherit' });
}

const { main } = await import('../dist/cli/main.js');
process.exitCode = await main(argv);
