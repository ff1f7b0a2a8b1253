import https from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TLSSocket } from 'node:tls'
import type { Logger } from 'pino'
import { apiListenHost, type NodeTls } from './material.js'
import { TLS_API_LISTEN_FAILED } from './errors.js'

/**
 * The control API over TCP (api.listen) with mutual TLS, for remote CLI use and calls between
 * kernels. TLS is the outer gate: a client must present a certificate signed by the flock CA
 * (requestCert + rejectUnauthorized: no certificate, or one from another CA, ends the
 * handshake before any HTTP is read). Behind it every request takes exactly the Unix-socket
 * path of ControlServer: Host/Origin checks, bearer token, role, schema, audit.
 */
export interface RequestHandler {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>
}

export interface TlsApiListener {
  address: string
  port: number
  close(): Promise<void>
}

export function parseListen(listen: string): { host: string; port: number } {
  const port = Number(listen.slice(listen.lastIndexOf(':') + 1))
  return { host: apiListenHost(listen), port }
}

export async function startTlsApiListener(o: { listen: string; tls: NodeTls; server: RequestHandler; log?: Logger }): Promise<TlsApiListener> {
  const { host, port } = parseListen(o.listen)
  const srv = https.createServer(
    { key: o.tls.keyPem, cert: o.tls.certPem, ca: o.tls.caPem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate?.()
      o.log?.debug({ client: peer?.subject?.CN, remote: req.socket.remoteAddress, url: req.url }, 'api request over mutual TLS')
      void o.server.handle(req, res)
    },
  )
  srv.keepAliveTimeout = 5_000
  srv.on('tlsClientError', (err, sock) => {
    o.log?.warn({ remote: sock.remoteAddress, reason: err.message }, 'api TLS handshake refused')
  })
  await new Promise<void>((resolve, reject) => {
    srv.once('error', (err: NodeJS.ErrnoException) => reject(TLS_API_LISTEN_FAILED({ listen: o.listen, reason: err.code === 'EADDRINUSE' ? 'the port is in use' : err.code === 'EADDRNOTAVAIL' ? 'no such address on this host' : err.message }, { cause: err })))
    srv.listen(port, host, () => resolve())
  })
  const addr = srv.address()
  o.log?.info({ listen: o.listen }, 'control API listening with mutual TLS')
  return {
    address: host,
    port: typeof addr === 'object' && addr ? addr.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => srv.closeAllConnections(), 2_000)
        srv.close(() => {
          clearTimeout(force)
          resolve()
        })
        srv.closeIdleConnections()
      }),
  }
}
