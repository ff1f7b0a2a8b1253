import { spawn, type ChildProcess } from 'node:child_process'
import { freePort } from '../../src/platform/ports.js'
import { tempDir } from './tmp.js'
import { waitFor } from './wait.js'

/**
 * A real single-member etcd (Debian `etcd-server`) on loopback free ports, for store and
 * leadership tests that need no network namespaces. Several-member clusters across network
 * namespaces: test/helpers/netns.ts.
 */
export interface TestEtcd {
  endpoint: string
  proc: ChildProcess
  /** kill -9 (a crashed member); `start()` brings it back on the same ports and data. */
  crash(): Promise<void>
  start(): Promise<void>
  stop(): Promise<void>
}

export async function startTestEtcd(): Promise<TestEtcd> {
  const tmp = tempDir('mf-etcd-')
  const client = await freePort()
  const peer = await freePort()
  const run = () => spawn(
    'etcd',
    [
      '--name', 'e1',
      '--data-dir', `${tmp.dir}/data`,
      '--listen-client-urls', `http://127.0.0.1:${client}`,
      '--advertise-client-urls', `http://127.0.0.1:${client}`,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `e1=http://127.0.0.1:${peer}`,
      '--heartbeat-interval', '100',
      '--election-timeout', '500',
      '--log-level', 'error',
    ],
    { stdio: 'ignore' },
  )
  const endpoint = `http://127.0.0.1:${client}`
  const healthy = () => waitFor('etcd health', async () => {
    const r = await fetch(`${endpoint}/health`)
    return r.ok && ((await r.json()) as { health: string }).health === 'true'
  }, 30_000, 50)
  const kill = async (p: ChildProcess) => {
    if (p.exitCode !== null || p.signalCode !== null) return
    const done = new Promise((r) => p.once('exit', r))
    p.kill('SIGKILL')
    await done
  }
  const e: TestEtcd = {
    endpoint,
    proc: run(),
    async crash() {
      await kill(e.proc)
    },
    async start() {
      e.proc = run()
      await healthy()
    },
    async stop() {
      await kill(e.proc)
      tmp.cleanup()
    },
  }
  await healthy()
  return e
}
