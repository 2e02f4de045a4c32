// @ts-check
/**
 * A multi-host topology in network namespaces, for the multi-host test and bench:
 *
 *   client (10.77.1.2) ── veth ── lb (10.77.1.1 | br0 10.77.2.1) ── bridge ── h1 10.77.2.11
 *                                                                         ├── h2 10.77.2.12
 *                                                                         └── h3 10.77.2.13
 *
 * Every interface and address exists only inside namespaces made here (names unique
 * per run); nothing is added to the caller's namespace and no traffic to these
 * addresses leaves from it. `lb` forwards between its two sides, so the hosts'
 * replies go back through it (and through its conntrack, which undoes a DNAT).
 * Plain JavaScript so that bench/ can use it as it is.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export const VIP = '10.77.1.1';
export const CLIENT = '10.77.1.2';
export const LB_INNER = '10.77.2.1';
/** @param {number} i host index from 0 */
export const hostAddress = (i) => `10.77.2.${11 + i}`;

/** Why this machine cannot run the topology, or undefined when it can. */
export function netnsUnavailable() {
  if (process.platform !== 'linux') return 'network namespaces are Linux only';
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces';
  for (const tool of ['ip', 'nft']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `needs the ${tool} command (iproute2, nftables)`;
  }
  return undefined;
}

/**
 * @param {string} cmd
 * @param {string[]} args
 * @param {{ input?: string, timeoutMs?: number }} [opts]
 * @returns {Promise<{ code: number | null, stdout: string, stderr: string }>}
 */
export function run(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** @param {string} cmd @param {string[]} args @param {string} [input] */
async function must(cmd, args, input) {
  const r = await run(cmd, args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

export class Topology {
  /** @param {string} prefix @param {number} hosts */
  constructor(prefix, hosts) {
    this.prefix = prefix;
    this.client = `${prefix}-client`;
    this.lb = `${prefix}-lb`;
    /** @type {string[]} */
    this.hosts = Array.from({ length: hosts }, (_, i) => `${prefix}-h${i + 1}`);
    /** @type {Set<import('node:child_process').ChildProcess>} */
    this.children = new Set();
    /** @type {string[]} */
    this.made = [];
  }

  /** Creates the namespaces and links; on failure removes what it made. */
  static async create(hosts = 3) {
    const t = new Topology(`sg${process.pid.toString(36)}${randomBytes(3).toString('hex')}`, hosts);
    try {
      await t.build();
    } catch (err) {
      await t.destroy();
      throw err;
    }
    return t;
  }

  async build() {
    for (const ns of [this.client, this.lb, ...this.hosts]) {
      await must('ip', ['netns', 'add', ns]);
      this.made.push(ns);
      await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    const lb = ['-n', this.lb];
    await must('ip', [...lb, 'link', 'add', 'br0', 'type', 'bridge']);
    await must('ip', [...lb, 'addr', 'add', `${LB_INNER}/24`, 'dev', 'br0']);
    await must('ip', [...lb, 'link', 'set', 'br0', 'up']);
    await must('ip', [...lb, 'link', 'add', 'vclient', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.client]);
    await must('ip', [...lb, 'addr', 'add', `${VIP}/24`, 'dev', 'vclient']);
    await must('ip', [...lb, 'link', 'set', 'vclient', 'up']);
    await this.side(this.client, `${CLIENT}/24`, VIP);
    for (const [i, host] of this.hosts.entries()) {
      await must('ip', [...lb, 'link', 'add', `vh${i + 1}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host]);
      await must('ip', [...lb, 'link', 'set', `vh${i + 1}`, 'master', 'br0', 'up']);
      await this.side(host, `${hostAddress(i)}/24`, LB_INNER);
    }
    await must('ip', ['netns', 'exec', this.lb, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  }

  /** @param {string} ns @param {string} cidr @param {string} gateway */
  async side(ns, cidr, gateway) {
    await must('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', 'eth0']);
    await must('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    await must('ip', ['-n', ns, 'route', 'add', 'default', 'via', gateway]);
  }

  /** Runs a command to completion inside `ns`. @param {string} ns @param {string[]} argv @param {{ input?: string, timeoutMs?: number }} [opts] */
  exec(ns, argv, opts) {
    return run('ip', ['netns', 'exec', ns, ...argv], opts);
  }

  /** Loads an nftables ruleset into `ns` (replacing the table it names). @param {string} ns @param {string} rules */
  nft(ns, rules) {
    return must('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], rules);
  }

  /**
   * Starts a long-running command inside `ns` (`ip netns exec` execs it, so the child's
   * pid is the command's); destroy() stops it if the caller did not.
   * @param {string} ns @param {string[]} argv
   */
  spawn(ns, argv) {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.on('close', () => this.children.delete(child));
    return child;
  }

  /**
   * GETs each URL from inside `ns` with node:http (which, unlike fetch, sends the Host
   * header given), in one process; status 0 when the connection failed.
   * @param {string} ns @param {{ url: string, headers?: Record<string, string> }[]} requests
   * @returns {Promise<{ status: number, body: string }[]>}
   */
  async getAll(ns, requests) {
    const script = `const http=require('node:http');const reqs=JSON.parse(process.argv[1]);
Promise.all(reqs.map(({url,headers})=>new Promise((res)=>{const q=http.get(url,{headers:headers||{},timeout:5000},(r)=>{let b='';r.setEncoding('utf8');r.on('data',(d)=>b+=d);r.on('end',()=>res({status:r.statusCode,body:b}))});q.on('timeout',()=>q.destroy(new Error('timeout')));q.on('error',(e)=>res({status:0,body:String(e)}))}))).then((a)=>process.stdout.write(JSON.stringify(a)))`;
    const r = await this.exec(ns, [process.execPath, '-e', script, JSON.stringify(requests)], { timeoutMs: 15_000 });
    try {
      return JSON.parse(r.stdout);
    } catch {
      return requests.map(() => ({ status: 0, body: r.stderr }));
    }
  }

  /**
   * @param {string} ns @param {string} url @param {Record<string, string>} [headers]
   * @returns {Promise<{ status: number, body: string }>}
   */
  async get(ns, url, headers = {}) {
    const [answer] = await this.getAll(ns, [{ url, headers }]);
    if (!answer) throw new Error(`no answer for ${url} in ${ns}`);
    return answer;
  }

  /** Stops `child` by its pid (SIGTERM, then SIGKILL after `graceMs`); resolves when it has exited. @param {import('node:child_process').ChildProcess} child */
  async stop(child, graceMs = 5000) {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('close', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Stops everything started here, then any process still inside our namespaces, then deletes them. */
  async destroy() {
    await Promise.all([...this.children].map((c) => this.stop(c)));
    for (const ns of this.made) {
      const pids = (await run('ip', ['netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean).map(Number);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
    for (const ns of this.made.splice(0).reverse()) await run('ip', ['netns', 'del', ns]);
  }
}
