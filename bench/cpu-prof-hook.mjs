// CPU profile of the kernel under a bench: `NODE_OPTIONS=--import=<this file>` (absolute
// path) and PROFILE_DIR=<dir>. Only the kernel daemon process profiles itself; on SIGUSR2 it
// writes <dir>/kernel-<pid>-<n>.cpuprofile and starts a new profile (open it in Chrome
// DevTools or summarize with bench/cpu-prof-top.mjs). bench/realtime.mjs sends the signal per part.
import { Session } from 'node:inspector'
import { writeFileSync } from 'node:fs'
import path from 'node:path'

const dir = process.env.PROFILE_DIR
if (dir && process.argv.some((a) => a.endsWith('entry.js')) && process.argv.includes('--state-dir')) {
  const s = new Session()
  s.connect()
  const post = (m, p) => new Promise((res, rej) => s.post(m, p, (e, r) => (e ? rej(e) : res(r))))
  let n = 0
  await post('Profiler.enable')
  await post('Profiler.setSamplingInterval', { interval: 200 })
  await post('Profiler.start')
  process.on('SIGUSR2', async () => {
    const { profile } = await post('Profiler.stop')
    writeFileSync(path.join(dir, `kernel-${process.pid}-${++n}.cpuprofile`), JSON.stringify(profile))
    await post('Profiler.start')
  })
}
