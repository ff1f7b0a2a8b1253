import { promises as fsp } from 'node:fs'
import { KERNEL_ALREADY_RUNNING } from './errors.api.js'
import { isKernelProcess } from './state.js'

/**
 * One kernel per state directory. The lock file is created with O_EXCL and holds our pid;
 * a lock whose pid is not a running kernel (kill -9 leftover, recycled pid) is stale and is
 * taken over. Returns the release function.
 */
export async function acquireKernelLock(lockFile: string, stateDir: string): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await fsp.open(lockFile, 'wx', 0o600)
      await fh.writeFile(String(process.pid))
      await fh.sync()
      await fh.close()
      return release(lockFile)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const pid = Number((await fsp.readFile(lockFile, 'utf8').catch(() => '')).trim())
      // Ours already: the kernel's first stage took it (src/postgres/early-start.ts).
      if (pid === process.pid) return release(lockFile)
      if (pid && isKernelProcess(pid)) throw KERNEL_ALREADY_RUNNING({ pid, stateDir })
      await fsp.rm(lockFile, { force: true })
    }
  }
  throw KERNEL_ALREADY_RUNNING({ pid: 0, stateDir })
}

function release(lockFile: string): () => Promise<void> {
  return async () => {
    const pid = Number((await fsp.readFile(lockFile, 'utf8').catch(() => '')).trim())
    if (pid === process.pid) await fsp.rm(lockFile, { force: true })
  }
}
