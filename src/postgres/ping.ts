import net from 'node:net'

export type PingResult = 'running' | 'rejecting' | 'no_response'

/**
 * What pg_isready does, without the binary (the embedded-binaries package ships only
 * postgres, initdb and pg_ctl): send a protocol-3.0 StartupMessage and read the first reply.
 * An authentication request ('R') means the server accepts connections; an error ('E') with
 * SQLSTATE 57P03 (starting up, shutting down, in recovery without hot standby) means it
 * rejects them; no connection or no answer within the timeout is no_response. Nothing is
 * authenticated: the socket is closed after the first message.
 */
export function pingPostgres(host: string, port: number, user: string, timeoutMs = 2000): Promise<PingResult> {
  return new Promise((resolve) => {
    const params = Buffer.from(`user\0${user}\0database\0postgres\0\0`, 'utf8')
    const msg = Buffer.alloc(8 + params.length)
    msg.writeInt32BE(msg.length, 0)
    msg.writeInt32BE(196608, 4) // protocol 3.0
    params.copy(msg, 8)
    let done = false
    let buf = Buffer.alloc(0)
    const finish = (r: PingResult) => {
      if (done) return
      done = true
      sock.destroy()
      resolve(r)
    }
    const sock = net.connect({ host, port })
    sock.setTimeout(timeoutMs, () => finish('no_response'))
    sock.once('error', () => finish('no_response'))
    sock.once('connect', () => sock.write(msg))
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      const type = String.fromCharCode(buf[0] ?? 0)
      if (type === 'R') return finish('running')
      if (type !== 'E') return finish('no_response')
      if (buf.length < 5 || buf.length < 1 + buf.readInt32BE(1)) return // wait for the whole error
      const fields = buf.subarray(5, 1 + buf.readInt32BE(1)).toString('utf8').split('\0')
      const code = fields.find((f) => f.startsWith('C'))?.slice(1)
      finish(code === '57P03' ? 'rejecting' : 'running')
    })
    sock.once('end', () => finish('no_response'))
  })
}
