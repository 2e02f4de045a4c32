/** The control socket of a running Supervisor: status, resize and reload for its owner. */
import type { Supervisor } from '../supervisor/supervisor.js';
import { defaultControlPath } from './paths.js';
import { startControlServer, type ControlHandlers, type ControlServer } from './server.js';

export async function startServiceControl(
  sup: Supervisor,
  path: string | undefined,
  log: (line: string) => void,
  extra: Partial<ControlHandlers> = {},
  opts: { replace?: boolean } = {},
): Promise<ControlServer> {
  const handlers: ControlHandlers = {
    status: () => ({ pid: process.pid, address: sup.address, port: sup.port, workers: sup.workerPids(), policy: sup.policy, app: sup.options.app }),
    resize: (n) => sup.resize(n),
    reload: () => sup.reload(),
    ...extra,
  };
  return startControlServer(handlers, path ?? defaultControlPath(sup.address, sup.port), log, opts);
}
