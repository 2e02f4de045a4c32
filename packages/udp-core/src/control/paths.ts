/**
 * Where a service's control socket lives: `$XDG_RUNTIME_DIR/shardgram/`, else
 * `/run/shardgram/` for root, else a per-user directory under the OS temp dir.
 * The directory is the owner's alone (mode 0700, checked), the socket 0600.
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ShardgramError } from '../errors.js';

export function controlDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'shardgram');
  const uid = process.geteuid?.() ?? 0;
  return uid === 0 ? '/run/shardgram' : join(tmpdir(), `shardgram-${uid}`);
}

/** The file name that tells a service apart by its UDP address and port. */
export function controlFileName(address: string, port: number): string {
  return `udp-${address}-${port}.sock`;
}

export function defaultControlPath(address: string, port: number, env?: NodeJS.ProcessEnv): string {
  return join(controlDir(env), controlFileName(address, port));
}

/** Makes (or checks) a directory only its owner, this user, can enter. */
export function ensurePrivateDir(dir: string): void {
  let made: string | undefined;
  try {
    made = mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new ShardgramError(
      'ERR_SHARDGRAM_PERMISSION',
      `cannot create the control directory ${dir}: ${(err as Error).message}. Give another path with --control.`,
    );
  }
  const st = lstatSync(dir);
  const uid = process.geteuid?.() ?? 0;
  if (!st.isDirectory() || st.uid !== uid) {
    throw new ShardgramError(
      'ERR_SHARDGRAM_PERMISSION',
      `the control directory ${dir} is not a directory owned by uid ${uid}; refusing to put the control socket there. Give another path with --control.`,
      { uid },
    );
  }
  if (made !== undefined) {
    if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700); // ours: made under a umask
  } else if ((st.mode & 0o022) !== 0) {
    // Someone else could replace the socket file there; a directory we did not make is not ours to change.
    throw new ShardgramError(
      'ERR_SHARDGRAM_PERMISSION',
      `the control directory ${dir} is writable by other users (mode ${(st.mode & 0o777).toString(8)}): anyone could replace the control socket there. Use a directory only you can write to (e.g. chmod go-w ${dir}), or another --control path.`,
      { uid },
    );
  }
}

/** Control sockets in the default directory for a UDP port, whatever the address. */
export function findControlSockets(port: number, env?: NodeJS.ProcessEnv): string[] {
  const dir = controlDir(env);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => n.startsWith('udp-') && n.endsWith(`-${port}.sock`)).map((n) => join(dir, n));
}
