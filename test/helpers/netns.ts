import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { waitFor } from './wait.js'

/**
 * N "hosts" on one machine: network namespaces joined by veth pairs to a bridge that lives in
 * its own switch namespace, so nothing is added to the machine's own network stack. Host i
 * has address 10.231.0.<i> on `eth0`; a client namespace (10.231.0.100) runs writers that
 * must reach every host. Namespaces are named `mfns-mh<pid>-…`: a run that was killed leaves
 * namespaces whose pid is dead, and the next run removes them (`removeStale`).
 *
 * Only addresses inside these namespaces (and each namespace's own loopback) are used.
 */
export const SUBNET = '10.231.0.0/24'
const PREFIX = 'mfns-mh'

export interface NetHost {
  /** h1, h2, … or cl */
  name: string
  ns: string
  addr: string
  /** The veth end on the switch (link down = host partitioned). */
  port: string
  dir: string
}

export interface NetTopology {
  hosts: NetHost[]
  client: NetHost
  sw: string
  /** Spawns a process inside a host's namespace. */
  spawn(h: NetHost, cmd: string, args: string[], opts?: { env?: Record<string, string>; log?: string }): ChildProcess
  /** Cuts the host off from every other host and the client (its link on the switch goes down). */
  partition(h: NetHost): void
  heal(h: NetHost): void
  /** SIGKILL of every process in the host's namespace: the machine is gone. */
  killHost(h: NetHost): number
  destroy(): void
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function killNs(ns: string): number {
  let n = 0
  for (let round = 0; round < 5; round++) {
    let pids: number[]
    try {
      pids = ip('netns', 'pids', ns).split('\n').map(Number).filter((p) => p > 0)
    } catch {
      return n
    }
    if (pids.length === 0) return n
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL')
        n++
      } catch {
        // already gone
      }
    }
    execFileSync('sleep', ['0.05'])
  }
  return n
}

function deleteNs(ns: string): void {
  killNs(ns)
  try {
    ip('netns', 'del', ns)
  } catch {
    // already gone
  }
}

/** Namespaces of earlier runs of this harness whose process is dead (a killed test run). */
export function removeStale(): string[] {
  const removed: string[] = []
  let list: string
  try {
    list = ip('netns', 'list')
  } catch {
    return removed
  }
  for (const line of list.split('\n')) {
    const ns = line.split(' ')[0] ?? ''
    const m = /^mfns-mh(\d+)-/.exec(ns)
    if (!m || pidAlive(Number(m[1]))) continue
    deleteNs(ns)
    removed.push(ns)
  }
  return removed
}

export function createNetTopology(n: number): NetTopology {
  removeStale()
  const tag = `${PREFIX}${process.pid}`
  const sw = `${tag}-sw`
  const root = path.join(os.tmpdir(), `mf-net-${process.pid}`)
  const all: string[] = []
  const mk = (name: string, octet: number, i: number): NetHost => {
    const h: NetHost = { name, ns: `${tag}-${name}`, addr: `10.231.0.${octet}`, port: `p${i}`, dir: path.join(root, name) }
    ip('netns', 'add', h.ns)
    all.push(h.ns)
    ip('-n', h.ns, 'link', 'set', 'lo', 'up')
    ip('link', 'add', 'eth0', 'netns', h.ns, 'type', 'veth', 'peer', 'name', h.port, 'netns', sw)
    ip('-n', h.ns, 'addr', 'add', `${h.addr}/24`, 'dev', 'eth0')
    ip('-n', h.ns, 'link', 'set', 'eth0', 'up')
    ip('-n', sw, 'link', 'set', h.port, 'master', 'br0')
    ip('-n', sw, 'link', 'set', h.port, 'up')
    mkdirSync(h.dir, { recursive: true, mode: 0o755 })
    return h
  }
  try {
    ip('netns', 'add', sw)
    all.push(sw)
    ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge')
    ip('-n', sw, 'link', 'set', 'br0', 'up')
    const hosts = Array.from({ length: n }, (_, i) => mk(`h${i + 1}`, i + 1, i + 1))
    const client = mk('cl', 100, 100)
    const children = new Set<ChildProcess>()
    return {
      hosts,
      client,
      sw,
      spawn(h, cmd, args, opts = {}) {
        const out = opts.log ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'pipe', 'inherit']
        const child = spawn('ip', ['netns', 'exec', h.ns, cmd, ...args], {
          stdio: out as ['ignore', 'pipe', 'pipe'],
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: os.tmpdir(), ...(opts.env ?? {}) },
        })
        children.add(child)
        child.once('exit', () => children.delete(child))
        return child
      },
      partition(h) {
        ip('-n', sw, 'link', 'set', h.port, 'down')
      },
      heal(h) {
        ip('-n', sw, 'link', 'set', h.port, 'up')
      },
      killHost(h) {
        return killNs(h.ns)
      },
      destroy() {
        for (const c of children) c.kill('SIGKILL')
        for (const ns of all.reverse()) deleteNs(ns)
        if (process.env.MAGFLOCK_KEEP_TMP !== '1') rmSync(root, { recursive: true, force: true })
      },
    }
  } catch (err) {
    for (const ns of all.reverse()) deleteNs(ns)
    throw err
  }
}

/** One etcd member per host (client :2379, peer :2380 on the host's address). */
export interface EtcdCluster {
  endpoints: string[]
  start(h: NetHost, state?: 'new' | 'existing'): Promise<void>
  stop(h: NetHost): void
  /** The host whose member is the raft leader now (asked through `via`'s member). */
  leader(via: NetHost): NetHost
}

export function etcdCluster(net: NetTopology, hosts: NetHost[]): EtcdCluster {
  const procs = new Map<string, ChildProcess>()
  const initial = hosts.map((h) => `${h.name}=http://${h.addr}:2380`).join(',')
  const c: EtcdCluster = {
    endpoints: hosts.map((h) => `http://${h.addr}:2379`),
    async start(h, state = 'new') {
      const p = net.spawn(h, 'etcd', [
        '--name', h.name,
        '--data-dir', path.join(h.dir, 'etcd'),
        '--listen-client-urls', `http://${h.addr}:2379,http://127.0.0.1:2379`,
        '--advertise-client-urls', `http://${h.addr}:2379`,
        '--listen-peer-urls', `http://${h.addr}:2380`,
        '--initial-advertise-peer-urls', `http://${h.addr}:2380`,
        '--initial-cluster', initial,
        '--initial-cluster-state', state,
        '--initial-cluster-token', `mf-${process.pid}`,
        // A LAN etcd: heartbeat 50 ms, election 500 ms. A lost etcd leader is replaced well
        // within the 2 s a MagFlock primary waits for a renewal before it demotes itself.
        '--heartbeat-interval', '50',
        '--election-timeout', '500',
        '--logger', 'zap',
        '--log-level', 'error',
      ])
      p.stdout?.resume()
      procs.set(h.name, p)
    },
    stop(h) {
      procs.get(h.name)?.kill('SIGKILL')
      procs.delete(h.name)
    },
    leader(via) {
      const out = nsExec(via, 'etcdctl', ['--endpoints', c.endpoints.join(','), '--command-timeout=2s', 'endpoint', 'status', '--write-out=json'])
      const rows = JSON.parse(out) as Array<{ Endpoint: string; Status: { header: { member_id: number | string }; leader: number | string } }>
      const lead = rows.find((r) => String(r.Status.header.member_id) === String(r.Status.leader))
      const h = hosts.find((x) => lead && lead.Endpoint === `http://${x.addr}:2379`)
      if (!h) throw new Error(`no etcd leader among ${rows.length} members`)
      return h
    },
  }
  return c
}

/** Runs a short command in a namespace and returns its stdout. */
export function nsExec(h: NetHost, cmd: string, args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', h.ns, cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

export async function waitEtcdHealthy(h: NetHost, timeoutMs = 30_000): Promise<void> {
  // etcdctl prints the verdict on stderr; its exit status is the answer.
  await waitFor(`etcd on ${h.name}`, async () => {
    nsExec(h, 'etcdctl', ['--endpoints', `http://${h.addr}:2379`, '--command-timeout=1s', 'endpoint', 'health'])
    return true
  }, timeoutMs, 200)
}
