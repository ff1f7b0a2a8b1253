import { startKernel, type DaemonOptions } from './boot.js'

/**
 * `magflock kernel start --foreground`: boot, then serve until SIGTERM/SIGINT (orderly
 * shutdown of everything, Postgres included) or a shutdown request; SIGHUP reloads config.
 */
export async function runForeground(opts: DaemonOptions): Promise<void> {
  const kernel = await startKernel(opts)
  const stop = (signal: string) => void kernel.shutdown({ keepPostgres: false, reason: signal })
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGHUP', () => {
    kernel.reload().catch((err: Error) => kernel.services.log.error({ code: (err as { code?: string }).code, msg: err.message }, 'config reload refused; the running config stays'))
  })
  await kernel.stopped
}
