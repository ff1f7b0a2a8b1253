import { copyFileSync, renameSync, rmSync } from 'node:fs'
import net from 'node:net'

/**
 * The restore_command of a point-in-time restore from an object store:
 *   node wal-get.js SOCKET %f %p
 * run by Postgres (as its OS user, in the data dir) for each WAL file recovery needs. It asks
 * the restore's WAL server (wal-serve.ts, inside the kernel, on a Unix socket in a directory
 * only the postgres user and root can enter) for the file; the server answers once the file is
 * decoded into its spool, and this moves it to %p. It holds no credential and reads no
 * environment: the repository credentials and the backup key stay in the kernel.
 *
 * Exit status (what Postgres makes of it):
 *   0    the file is at %p
 *   1    no repository holds the file: the normal end of archive recovery
 *   126  the object is damaged or unreadable, or the server is gone (a segment; a history file
 *        asked for then is exit 1, see below): Postgres treats an exit
 *        status above 125 as fatal and stops recovery, so a damaged archive never ends it early
 *        (the kernel reports the server's error, naming the object)
 *
 * Imports only Node built-ins (it starts once per WAL file: nothing else to load).
 */
const FATAL = 126
const HISTORY = /^[0-9A-F]{8}\.history$/

function main(argv: string[]): void {
  const [sock, name, dest] = argv
  if (!sock || !name || !dest) {
    process.stderr.write('usage: wal-get SOCKET WALFILE DEST\n')
    process.exit(FATAL)
  }
  let answer = ''
  const c = net.createConnection(sock)
  c.setEncoding('utf8')
  c.on('connect', () => c.write(`${name}\n`))
  c.on('data', (d: string) => {
    answer += d
  })
  c.on('error', (err) => {
    process.stderr.write(`wal-get: the restore's WAL server is unreachable: ${err.message}\n`)
    // Postgres asks for timeline history files once more while it leaves recovery, after
    // recovery.signal is gone (the restore may be over and its server closed by then): those
    // are "not found". A WAL segment asked for without the server would end recovery early.
    process.exit(HISTORY.test(name) ? 1 : FATAL)
  })
  c.on('close', () => {
    const line = answer.split('\n')[0] ?? ''
    if (line === 'NONE') process.exit(1)
    if (line.startsWith('OK ')) {
      const spooled = line.slice(3)
      try {
        renameSync(spooled, dest)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') {
          process.stderr.write(`wal-get: cannot move ${name} into place: ${(err as Error).message}\n`)
          process.exit(FATAL)
        }
        copyFileSync(spooled, dest)
        rmSync(spooled, { force: true })
      }
      process.exit(0)
    }
    process.stderr.write(`wal-get: ${name}: ${line.startsWith('ERR ') ? line.slice(4) : 'no answer from the WAL server'}\n`)
    process.exit(FATAL)
  })
}

main(process.argv.slice(2))
