import { promises as fsp } from 'node:fs'
import type { MagflockConfig } from '../config/schema.js'
import type { SecretStore } from '../kernel/services.js'
import { postgresRunAs } from '../platform/os-user.js'
import { isInstanceName, type StateLayout } from '../platform/paths.js'
import { isOurPostmaster, readPostmasterPid } from '../postgres/pidfile.js'
import { resolveNodeTls, writePostgresTls } from './material.js'

/**
 * After `tls rotate`: rewrites the copies Postgres reads and sends SIGHUP to every running
 * postmaster of this state dir, which reloads ssl_cert_file/ssl_key_file without a restart
 * (Postgres ≥ 10) and keeps existing sessions. Returns the instances that were signalled.
 * When no instance has TLS files yet (the kernel never started with TLS), only the files
 * change: the next kernel start turns ssl on.
 */
export async function applyRotation(o: { layout: StateLayout; projectDir: string; config: MagflockConfig; secrets: Pick<SecretStore, 'get'> }): Promise<string[]> {
  const tls = await resolveNodeTls({ stateRoot: o.layout.root, projectDir: o.projectDir, config: o.config, secrets: o.secrets })
  if (!tls) return []
  await writePostgresTls(o.layout.root, tls, postgresRunAs(o.config.postgres.osUser))
  const names = await fsp.readdir(o.layout.instancesDir).catch(() => [] as string[])
  const reloaded: string[] = []
  for (const name of names.filter(isInstanceName).sort()) {
    const dataDir = o.layout.dataDir(name)
    const pm = await readPostmasterPid(dataDir)
    if (!pm || !(await isOurPostmaster(pm.pid, dataDir))) continue
    try {
      process.kill(pm.pid, 'SIGHUP')
      reloaded.push(name)
    } catch {
      // exited meanwhile: its next start reads the new files
    }
  }
  return reloaded
}
