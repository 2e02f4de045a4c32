/**
 * App name resolution: built-ins first, then packages that declare shardgram apps, found from
 * the working directory the way Node finds packages. Fake packages in a temp project.
 * (Runs against the resolver's source, as udp-core's other unit tests of internals do: built-ins
 * resolve to the modules beside it, src/app/builtin/<name>.js, whose TypeScript source is <name>.ts
 * there; the compiled package is what test/published-package.test.ts and the serve tests run.)
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
// From the source, as resolveApp is: its errors are instances of this copy of the class (the package's is dist/'s).
import { ShardgramError } from '../src/errors.js';
import { resolveApp } from '../src/app/resolve.js';

const project = mkdtempSync(join(tmpdir(), 'shardgram-resolve-'));
afterAll(() => rmSync(project, { recursive: true, force: true }));

/** Writes node_modules/<name>/package.json (with `shardgram` as given) and the files named. */
function fakePackage(name: string, shardgram: unknown, files: string[] = []): string {
  const dir = join(project, 'node_modules', name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, type: 'module', ...(shardgram === undefined ? {} : { shardgram }) }));
  for (const f of files) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    writeFileSync(join(dir, f), 'export default () => {};\n');
  }
  return dir;
}

function errorOf(fn: () => unknown): ShardgramError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ShardgramError);
    expect((err as ShardgramError).code).toBe('ERR_SHARDGRAM_APP');
    return err as ShardgramError;
  }
  throw new Error('expected a ShardgramError');
}

describe('resolveApp', () => {
  const examples = fakePackage(
    '@shardgram/examples',
    { apps: { bar: './dist/bar.js', echo: './dist/echo.js', ghost: './dist/ghost.js', evil: '../outside.js' } },
    ['dist/bar.js', 'dist/echo.js'],
  );
  const foo = fakePackage('shardgram-app-foo', { apps: { foo: './lib/foo.js' } }, ['lib/foo.js']);
  const barPkg = fakePackage('shardgram-app-bar', { apps: { bar: './bar.js' } }, ['bar.js']);
  fakePackage('shardgram-app-empty', undefined);
  fakePackage('shardgram-app-broken', { apps: ['./x.js'] });

  it('resolves the built-in apps to modules of this package, before any installed package', () => {
    for (const app of ['echo', 'discard']) {
      const url = resolveApp(app, project);
      expect(url).toBe(new URL(`../src/app/builtin/${app}.js`, import.meta.url).href);
      expect(existsSync(fileURLToPath(url).replace(/\.js$/, '.ts'))).toBe(true);
    }
  });

  it('resolves a name declared by shardgram-app-<name>, from the working directory and below it', () => {
    const want = pathToFileURL(join(foo, 'lib/foo.js')).href;
    expect(resolveApp('foo', project)).toBe(want);
    const nested = join(project, 'src', 'deep');
    mkdirSync(nested, { recursive: true });
    expect(resolveApp('foo', nested)).toBe(want);
  });

  it('asks shardgram-app-<name> before @shardgram/examples', () => {
    expect(resolveApp('bar', project)).toBe(pathToFileURL(join(barPkg, 'bar.js')).href);
    rmSync(barPkg, { recursive: true });
    expect(resolveApp('bar', project)).toBe(pathToFileURL(join(examples, 'dist/bar.js')).href);
  });

  it('says what it looked for, what is installed, and what to install', () => {
    const e = errorOf(() => resolveApp('nosuch', project));
    expect(e.message).toMatch(/^unknown app "nosuch"\. Built-in apps: discard, echo\./);
    expect(e.message).toContain(`from ${project} up`);
    expect(e.message).toContain('shardgram-app-nosuch (not installed)');
    expect(e.message).toMatch(/@shardgram\/examples \(installed; has bar, echo, ghost, evil\)/);
    expect(e.message).toContain('npm install shardgram-app-nosuch');
    expect(errorOf(() => resolveApp('empty', project)).message).toContain('shardgram-app-empty (installed; declares no apps)');
  });

  it('rejects declarations that are malformed, point outside the package, or at nothing', () => {
    expect(errorOf(() => resolveApp('broken', project)).message).toMatch(/"shardgram\.apps" must map app names to module paths/);
    expect(errorOf(() => resolveApp('evil', project)).message).toMatch(/declares app "evil" as "\.\.\/outside\.js"; it must be a path inside the package/);
    expect(errorOf(() => resolveApp('ghost', project)).message).toMatch(/declares app "ghost" as \.\/dist\/ghost\.js, but .*ghost\.js does not exist/);
  });

  it('takes paths from the working directory and file: URLs as they are', () => {
    writeFileSync(join(project, 'mine.js'), 'export default () => {};\n');
    expect(resolveApp('./mine.js', project)).toBe(pathToFileURL(join(project, 'mine.js')).href);
    expect(errorOf(() => resolveApp('./missing.js', project)).message).toMatch(/app module .*missing\.js does not exist/);
    expect(resolveApp('file:///x/app.js', project)).toBe('file:///x/app.js');
  });
});
