import { execa } from 'execa'
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readKernelInfo } from '../../src/kernel/state.js'
import { isProcessAliveSync } from '../../src/platform/pids.js'
import { createFlock, type Flock } from '../helpers/flock.js'
import { waitFor } from '../helpers/wait.js'

/**
 * kill -9 of the kernel while an admin's .js migration runs in its `nobody` child: the child
 * must die with the kernel (setpriv --pdeathsig), not keep running user code unsupervised.
 */
let f: Flock

beforeAll(async () => {
  f = await createFlock()
  const r = await f.run(['up', '--json'])
  if (r.exitCode !== 0) throw new Error(`up failed: ${r.stdout} ${r.stderr}`)
  const c = await f.run(['db', 'create', 'app', '--json'])
  if (c.exitCode !== 0) throw new Error(`db create failed: ${c.stdout} ${c.stderr}`)
}, 180_000)
afterAll(async () => {
  await f?.destroy()
})

async function childrenRunning(marker: string): Promise<number[]> {
  const ps = await execa('ps', ['-eo', 'pid=,user=,args='], { reject: false })
  return String(ps.stdout)
    .split('\n')
    .filter((l) => l.includes(marker) && !l.includes('ps -eo'))
    .map((l) => Number(l.trim().split(/\s+/)[0]))
}

describe('chaos: kernel killed during a .js migration', { timeout: 120_000 }, () => {
  it('the nobody child dies with the kernel', async () => {
    const dir = path.join(f.projectDir, 'js-hang')
    mkdirSync(dir)
    chmodSync(dir, 0o755)
    const file = path.join(dir, '1_hang.js')
    writeFileSync(file, 'module.exports.generateSql = () => { for (;;) {} }\n')
    chmodSync(file, 0o644)
    const run = f.run(['db', 'migrate', '--db', 'app', '--dir', dir, '--json'])
    await waitFor('the .js child to run', async () => (await childrenRunning(file)).length > 0, 30_000)
    const ps = await execa('ps', ['-o', 'user=', '-p', String((await childrenRunning(file))[0])], { reject: false })
    expect(String(ps.stdout).trim()).toBe('nobody')
    const info = await readKernelInfo(f.layout)
    process.kill(info!.pid, 'SIGKILL')
    await waitFor('the kernel to die', async () => !isProcessAliveSync(info!.pid))
    await waitFor('the .js child to die with it', async () => (await childrenRunning(file)).length === 0, 10_000)
    const res = await run
    expect(res.exitCode).not.toBe(0)
  })
})
