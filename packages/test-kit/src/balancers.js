// @ts-check
/**
 * The balancers of docs/multi-host.md, as the multi-host test and bench configure
 * them: nftables DNAT (per-flow hash or random) and nginx's `stream` UDP proxy, and
 * the Prometheus that scrapes the hosts.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * An nftables ruleset for the balancer's namespace: datagrams to `vip:port` are
 * DNATed to one of `targets` (addresses) on `toPort`, chosen per flow (conntrack keeps a flow's
 * choice; replies are un-NATed on the way back).
 *
 * - `jhash`: a hash of source address and port, so one client socket always reaches
 *   the same host (as long as the host list does not change);
 * - `random`: `numgen random`, an even spread per new flow whatever the sources.
 *
 * @param {{ table: string, vip: string, rules: { port: number, kind: 'jhash' | 'random' }[], targets: string[], toPort: number }} o
 */
export function nftDnat(o) {
  const n = o.targets.length;
  const map = `{ ${o.targets.map((t, i) => `${i} : ${t}`).join(', ')} }`;
  const lines = o.rules.map(({ port, kind }) => {
    const pick = kind === 'jhash' ? `jhash ip saddr . udp sport mod ${n}` : `numgen random mod ${n}`;
    return `    ip daddr ${o.vip} udp dport ${port} dnat to ${pick} map ${map} : ${o.toPort}`;
  });
  // "add table" + "delete table" + the table: loading replaces the table whole.
  return [
    `add table ip ${o.table}`,
    `delete table ip ${o.table}`,
    `table ip ${o.table} {`,
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    ...lines,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Debian's nginx has the stream module as a dynamic module; other builds may have it built in. */
export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

/**
 * An nginx configuration (run as `nginx -p DIR -c DIR/nginx.conf -e DIR/error.log
 * -g 'daemon off;'`) proxying UDP `listen` to the hosts, one reply per datagram.
 *
 * @param {{ dir: string, listen: string, targets: string[], workers?: number, proxyTimeout?: string }} o
 */
export async function writeNginxConfig(o) {
  const conf = join(o.dir, 'nginx.conf');
  const text = [
    existsSync(NGINX_STREAM_MODULE) ? `load_module ${NGINX_STREAM_MODULE};` : '# stream module built in',
    `worker_processes ${o.workers ?? 1};`,
    `pid ${join(o.dir, 'nginx.pid')};`,
    `error_log ${join(o.dir, 'error.log')} warn;`,
    'events {',
    '  # Each UDP session holds two connections (client side, upstream side).',
    '  worker_connections 8192;',
    '}',
    'stream {',
    '  upstream shardgram {',
    ...o.targets.map((t) => `    server ${t};`),
    '  }',
    '  server {',
    '    # reuseport: one socket per nginx worker; rcvbuf: room for a burst.',
    `    listen ${o.listen} udp reuseport rcvbuf=4m;`,
    '    proxy_pass shardgram;',
    '    # One reply per datagram ends the session at once (echo); 0 for one-way traffic.',
    '    proxy_responses 1;',
    '    # A session whose reply never comes is closed after this.',
    `    proxy_timeout ${o.proxyTimeout ?? '2s'};`,
    '  }',
    '}',
    '',
  ].join('\n');
  await writeFile(conf, text);
  return conf;
}

/**
 * A Prometheus configuration scraping `targets` (host:port of --stats-address:--stats-port) every second.
 * @param {{ dir: string, jobs: { name: string, targets: string[] }[], intervalSeconds?: number }} o
 */
export async function writePrometheusConfig(o) {
  const file = join(o.dir, 'prometheus.yml');
  const every = `${o.intervalSeconds ?? 1}s`;
  const text = [
    'global:',
    `  scrape_interval: ${every}`,
    `  evaluation_interval: ${every}`,
    'scrape_configs:',
    ...o.jobs.flatMap((j) => [
      `  - job_name: ${j.name}`,
      `    scrape_timeout: ${every}`,
      '    static_configs:',
      `      - targets: [${j.targets.map((t) => `'${t}'`).join(', ')}]`,
    ]),
    '',
  ].join('\n');
  await writeFile(file, text);
  return file;
}
