/**
 * Once per `vitest run`: the run's own control-socket directory. A service started
 * without `--control` puts its socket under `$XDG_RUNTIME_DIR/shardgram/` (else, as
 * root, under `/run/shardgram/`, which every run on the machine shares: two checkouts
 * testing the same port at once would find each other's sockets). Made with mkdtemp
 * (mode 0700), handed to every test process through the environment, removed at the end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'shardgram-run-'));
  process.env.XDG_RUNTIME_DIR = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
