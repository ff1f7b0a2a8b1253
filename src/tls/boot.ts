import type { Logger } from 'pino'
import type { MagflockConfig } from '../config/schema.js'
import type { SecretStore } from '../kernel/services.js'
import type { OsUser } from '../platform/os-user.js'
import { resolveNodeTls, writePostgresTls, type NodeTls } from './material.js'
import { assertTlsForNetwork } from './postgres.js'

/**
 * Kernel boot step, before any instance starts: resolves this node's TLS material (flock CA or
 * the operator's own), refuses a non-loopback postgres.listen or an api.listen without it
 * (E_TLS_REQUIRED), and writes the copies Postgres reads. A flock without certificates and
 * with the default 127.0.0.1 boots exactly as before (undefined, nothing written).
 */
export async function prepareNodeTls(o: {
  stateRoot: string
  projectDir: string
  config: MagflockConfig
  secrets: Pick<SecretStore, 'get'>
  runAs: OsUser | undefined
  log?: Logger
}): Promise<NodeTls | undefined> {
  const tls = await resolveNodeTls(o)
  assertTlsForNetwork(o.config, tls !== undefined)
  if (!tls) return undefined
  await writePostgresTls(o.stateRoot, tls, o.runAs)
  o.log?.info({ source: tls.source }, 'TLS material ready: Postgres runs with ssl = on')
  return tls
}
