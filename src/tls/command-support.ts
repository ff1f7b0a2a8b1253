import type { MagflockConfig } from '../config/schema.js'
import { effectiveEnv } from '../config/flags.js'
import { loadConfig } from '../config/load.js'
import type { CertInfo } from './certs.js'
import type { TlsStatus } from './material.js'

/** The layered config of the project in the current directory (tls commands run locally, like `secrets`). */
export async function localConfig(): Promise<MagflockConfig> {
  return (await loadConfig({ cwd: process.cwd(), env: effectiveEnv(undefined) })).config
}

function certLine(label: string, c: CertInfo | null): string {
  if (!c) return `${label.padEnd(6)} none`
  const warn = c.daysLeft < 0 ? '  EXPIRED' : c.daysLeft < 30 ? '  EXPIRES SOON' : ''
  return `${label.padEnd(6)} ${c.subject}  expires ${c.notAfter.slice(0, 10)} (${c.daysLeft} days)${warn}${c.sans.length > 0 ? `\n       names: ${c.sans.join(', ')}` : ''}`
}

/** Human lines of `tls status` / `init` / `rotate`. */
export function renderTlsStatus(s: TlsStatus): string[] {
  const src = s.source === 'none' ? 'no certificates (Postgres and the API stay on loopback)' : s.source === 'flock-ca' ? 'flock CA managed by MagFlock (keys in the secret store)' : 'your own CA and certificate (tls.caFile, tls.certFile, tls.keyFile)'
  return [`source ${src}`, `node   ${s.node}`, certLine('CA', s.ca), certLine('cert', s.cert)]
}
