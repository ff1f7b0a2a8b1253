import { readFileSync } from 'node:fs'
import { isIP, type Socket } from 'node:net'
import path from 'node:path'
import { createRequire } from 'node:module'
import type * as TlsModule from 'node:tls'
import type { MagflockError } from '../errors/index.js'

// node:tls is loaded on the first remote call only: every other command starts without it.
const requireNode = createRequire(import.meta.url)
import { REMOTE_TLS_FILES, REMOTE_TOKEN_MISSING, REMOTE_UNREACHABLE } from './errors.js'

/**
 * The CLI side of the mutual-TLS control API: `magflock --api ADDRESS:PORT --tls-dir DIR …`
 * (or MAGFLOCK_API, MAGFLOCK_TLS_DIR). DIR holds what `magflock tls client NAME --out DIR`
 * wrote: ca.crt (to verify the node, verify-full on its address or name), client.crt and
 * client.key (to prove the caller holds a certificate of the flock CA). A token is still
 * required: the certificate opens the door, the token's role decides what may happen.
 */
export interface RemoteTransport {
  api: string
  connect(): Socket
  /** Every connection error becomes one diagnosis (handshake refused, wrong CA, refused). */
  mapError(err: NodeJS.ErrnoException): MagflockError
  missingToken(): MagflockError
}

export function remoteTransport(api: string, tlsDir: string | undefined): RemoteTransport {
  const m = api.match(/^(?:https:\/\/)?\[?([^\]/]+?)\]?:(\d{1,5})\/?$/)
  if (!m?.[1] || !m[2]) throw REMOTE_UNREACHABLE({ api, reason: 'not ADDRESS:PORT' })
  const host = m[1]
  const port = Number(m[2])
  if (!tlsDir) throw REMOTE_TLS_FILES({ dir: '(none)', reason: 'no --tls-dir or MAGFLOCK_TLS_DIR given' })
  const dir = path.resolve(tlsDir)
  const read = (f: string) => {
    try {
      return readFileSync(path.join(dir, f), 'utf8')
    } catch {
      throw REMOTE_TLS_FILES({ dir, reason: `${f} is missing or unreadable` })
    }
  }
  const ca = read('ca.crt')
  const cert = read('client.crt')
  const key = read('client.key')
  return {
    api: `${host}:${port}`,
    connect: () => (requireNode('node:tls') as typeof TlsModule).connect({ host, port, ca, cert, key, minVersion: 'TLSv1.2', ...(isIP(host) ? {} : { servername: host }) }),
    mapError: (err) => {
      const reason =
        err.code === 'ECONNREFUSED'
          ? 'connection refused (is api.listen set on that node and its kernel running?)'
          : err.code === 'ECONNRESET' || err.code === 'EPIPE'
            ? 'the node closed the connection (it refused this client certificate, or the kernel stopped)'
            : /certificate|alert|SSL/i.test(`${err.code ?? ''} ${err.message}`)
              ? `TLS handshake failed: ${err.message}`
              : err.message
      return REMOTE_UNREACHABLE({ api: `${host}:${port}`, reason }, { cause: err })
    },
    missingToken: () => REMOTE_TOKEN_MISSING({ api: `${host}:${port}` }),
  }
}
