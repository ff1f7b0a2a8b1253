import type { MagflockConfig } from '../config/schema.js'
import type { CertInfo } from './certs.js'
import { tlsStatus } from './material.js'

/** `magflock doctor` rows for TLS: where the certificates come from and when they expire. */
export interface TlsCheck {
  name: string
  status: 'ok' | 'warn' | 'fail'
  detail: string
  hint?: string
}

const WARN_DAYS = 30

function expiryCheck(name: string, c: CertInfo, renew: string): TlsCheck {
  const detail = `${c.subject}, expires ${c.notAfter.slice(0, 10)} (${c.daysLeft} days)`
  if (c.daysLeft < 0) return { name, status: 'fail', detail: `${detail}: EXPIRED`, hint: renew }
  if (c.daysLeft < WARN_DAYS) return { name, status: 'warn', detail: `${detail}: expires within ${WARN_DAYS} days`, hint: renew }
  return { name, status: 'ok', detail }
}

export async function tlsChecks(stateRoot: string, projectDir: string, config: MagflockConfig): Promise<TlsCheck[]> {
  try {
    const s = await tlsStatus({ stateRoot, projectDir, config })
    if (s.source === 'none') return [{ name: 'tls', status: 'ok', detail: 'no certificates: Postgres and the control API stay on 127.0.0.1 (`magflock tls init` before listening beyond it)' }]
    const own = s.source === 'operator'
    const out: TlsCheck[] = []
    if (s.ca) out.push(expiryCheck('tls ca', s.ca, own ? 'Replace tls.caFile with a renewed CA.' : 'Run `magflock tls rotate --ca` (then issue every node a new certificate).'))
    // A node that joined with a bundle holds no CA key: it is renewed from a node that does.
    const renew = 'Run `magflock tls rotate` where the flock CA key is; on a node that joined with a bundle, `magflock node invite NAME --renew --san ADDR --out FILE` on a node holding it, then `magflock tls renew --bundle FILE` here.'
    if (s.cert) out.push(expiryCheck('tls node cert', s.cert, own ? 'Replace tls.certFile and tls.keyFile with a renewed pair.' : renew))
    else out.push({ name: 'tls node cert', status: 'fail', detail: 'the flock CA exists but this node has no certificate', hint: 'Run `magflock tls rotate`.' })
    return out
  } catch (err) {
    return [{ name: 'tls', status: 'fail', detail: (err as Error).message, hint: (err as { hint?: string }).hint ?? '' }]
  }
}
