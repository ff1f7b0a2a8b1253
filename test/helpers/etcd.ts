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
  stop(): Promise<void>
}

export async function startTestEtcd(): Promise<TestEtcd> {
  const tmp = tempDir('mf-etcd-')
  const client = await freePort()
  const peer = await freePort()
  const proc = spawn(
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
  await waitFor('etcd health', async () => {
    const r = await fetch(`${endpoint}/health`)
    return r.ok && ((await r.json()) as { health: string }).health === 'true'
  }, 30_000, 50)
  return {
    endpoint,
    proc,
    async stop() {
      if (proc.exitCode === null) {
        const done = new Promise((r) => proc.once('exit', r))
        proc.kill('SIGKILL')
        await done
      }
      tmp.cleanup()
    },
  }
}
