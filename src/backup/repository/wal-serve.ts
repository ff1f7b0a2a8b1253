import { existsSync, type FSWatcher, watch, promises as fsp } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { OsUser } from '../../platform/os-user.js'
import { parseSegmentName, type ArchivedSegment } from '../wal.js'
import type { S3Repository } from './s3.js'
import { decodeWal, listRemoteWal, walKey } from './wal.js'

/**
 * WAL on demand for a point-in-time restore from object stores, like pgBackRest's archive-get
 * with its asynchronous queue. Postgres's restore_command is `node wal-get.js SOCKET %f %p`
 * (wal-get.ts): a small client that asks this server, running inside the kernel, for one WAL
 * file. The server
 *   - lists the WAL of the cluster in every repository once (also the restore's gap check),
 *   - fetches the asked file (the first repository holding it that reads back whole), decrypts,
 *     decompresses and checks it (decodeWal: name, size, sha256) into a spool directory owned by
 *     the postgres OS user, and answers with its path, which the client moves to %p;
 *   - keeps the next `prefetch` segments of the same timeline downloading in the background,
 *     `parallel` at a time, so replay rarely waits for the network; the first ones start before
 *     Postgres does (while the backup itself is read back);
 *   - answers NONE for a file no repository holds (the normal end of recovery), and ERR for an
 *     object that is damaged or unreadable; the error is kept in `failure` so the restore
 *     reports it (naming the object) instead of Postgres's "could not restore file".
 * The credentials and the backup key never leave the kernel: the client gets a socket path and
 * a file name, nothing else. The socket lives in the spool dir (mode 0700, postgres's), so only
 * root and the postgres OS user can connect.
 */
export interface WalServeOptions {
  repos: S3Repository[]
  sysid: string
  /** First segment recovery can ask for (the backup's start segment). */
  fromSegNo: bigint
  /** Timeline of the backup: its first segments are fetched before Postgres asks. */
  timeline: number
  /** Directory for decoded files (created; same filesystem as the data dir, so %p is a rename). */
  spoolDir: string
  getKek: (secretName: string) => Promise<Buffer | undefined>
  runAs?: OsUser | undefined
  /** Segments fetched ahead of the one asked for (default 8, 128 MiB of spool at most). */
  prefetch?: number
  /** Downloads in flight at once (default 4). */
  parallel?: number
}

interface Job {
  name: string
  promise: Promise<string>
  done: boolean
}

const HISTORY = /^[0-9A-F]{8}\.history$/
const MAX_SOCKET_PATH = 100
/** Prefix of the spool's markers for history files no repository holds (markAbsentHistories). */
const ABSENT = '.none-'
/**
 * Prefix of a second link to the newest spooled segment. When recovery ends, Postgres reads
 * its last record again, and asks restore_command for that segment before its own copy in
 * pg_wal (FinishWalRecovery; the archive is preferred): the shell copies it from this link
 * instead of the client fetching and decoding the object once more.
 */
const KEPT = '.kept-'

/**
 * The client script: next to this module (wal-get.js in dist/, wal-get.ts under vitest, where
 * Node strips the types), or, from the bundled kernel (dist/daemon/entry-*.js), the package's
 * dist/backup/repository/wal-get.js.
 */
export function walGetScript(): string {
  const self = fileURLToPath(import.meta.url)
  const sibling = path.join(path.dirname(self), `wal-get${path.extname(self)}`)
  if (existsSync(sibling)) return sibling
  for (let d = path.dirname(self); d !== path.dirname(d); d = path.dirname(d)) {
    if (existsSync(path.join(d, 'package.json'))) return path.join(d, 'dist', 'backup', 'repository', 'wal-get.js')
  }
  return sibling
}

/** Shell-quoted, with % doubled (Postgres expands %f, %p, %r and %% in restore_command). */
const shq = (s: string) => `'${s.replace(/'/g, "'\\''").replace(/%/g, '%%')}'`

export class RemoteWalServer {
  /** Name → repositories holding it, in the order given. */
  private readonly where = new Map<string, S3Repository[]>()
  /** Segments by timeline, in order. */
  private readonly byTli = new Map<number, ArchivedSegment[]>()
  private readonly jobs = new Map<string, Job>()
  /** Segments with a `.kept-` link in the spool. */
  private readonly kept = new Set<string>()
  private readonly waiting: Array<() => void> = []
  private running = 0
  private server: net.Server | undefined
  private watcher: FSWatcher | undefined
  private socketDir: string | undefined
  private closed = false
  readonly prefetch: number
  readonly parallel: number
  /** The first object that could not be served (damaged, unreadable): the restore's real error. */
  failure: Error | undefined
  readonly stats = { served: 0, fetched: 0, missing: 0 }
  socketPath = ''

  private constructor(private readonly o: WalServeOptions) {
    this.prefetch = Math.max(0, o.prefetch ?? 8)
    this.parallel = Math.max(1, o.parallel ?? 4)
  }

  static async start(o: WalServeOptions): Promise<RemoteWalServer> {
    const s = new RemoteWalServer(o)
    try {
      await s.init()
    } catch (err) {
      await s.close()
      throw err
    }
    return s
  }

  private async init(): Promise<void> {
    const o = this.o
    await fsp.mkdir(o.spoolDir, { recursive: true, mode: 0o700 })
    await fsp.chmod(o.spoolDir, 0o700)
    if (o.runAs) await fsp.chown(o.spoolDir, o.runAs.uid, o.runAs.gid)
    for (const r of o.repos) {
      for (const name of (await listRemoteWal(r, o.sysid)).keys()) {
        const p = parseSegmentName(name)
        if (!((p && !p.partial && p.segNo >= o.fromSegNo) || HISTORY.test(name))) continue
        const had = this.where.get(name)
        if (had) had.push(r)
        else {
          this.where.set(name, [r])
          if (p) this.byTli.set(p.tli, [...(this.byTli.get(p.tli) ?? []), { name, ...p }])
        }
      }
    }
    for (const l of this.byTli.values()) l.sort((a, b) => (a.segNo < b.segNo ? -1 : a.segNo > b.segNo ? 1 : 0))
    await this.markAbsentHistories()
    // A Unix socket path is limited to ~107 bytes: a deep state dir gets one under the temp dir.
    let sockDir = o.spoolDir
    if (Buffer.byteLength(path.join(sockDir, 'wal.sock')) > MAX_SOCKET_PATH) {
      this.socketDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'mf-wal-'))
      if (o.runAs) await fsp.chown(this.socketDir, o.runAs.uid, o.runAs.gid)
      sockDir = this.socketDir
    }
    this.socketPath = path.join(sockDir, 'wal.sock')
    await fsp.rm(this.socketPath, { force: true })
    const server = net.createServer((c) => this.answer(c))
    this.server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.socketPath, () => {
        server.off('error', reject)
        resolve()
      })
    })
    await fsp.chmod(this.socketPath, 0o600)
    if (o.runAs) await fsp.chown(this.socketPath, o.runAs.uid, o.runAs.gid)
    this.watcher = watch(o.spoolDir, (_event, file) => {
      if (typeof file === 'string' && !file.startsWith('.')) this.taken(file)
    })
    this.watcher.on('error', () => undefined)
    // Recovery starts at the backup's first segment: have those ready before Postgres asks.
    const first = (this.byTli.get(o.timeline) ?? []).filter((s) => s.segNo >= o.fromSegNo).slice(0, Math.max(1, this.prefetch))
    for (const s of first) this.job(s.name)
  }

  /**
   * Postgres probes for timeline history files that do not exist: the next timeline's when
   * recovery starts (recovery_target_timeline 'latest') and again when it ends (to pick the new
   * timeline), the parent's (timeline 1 never has one). Each probe through the client costs a
   * Node start; answered "not found" by the shell alone, it costs a stat. A `.none-<name>` marker
   * in the spool stands for every history file of timelines 1 to two past the newest one the
   * repositories know that none holds: the server would answer NONE for them (`where` is fixed).
   */
  private async markAbsentHistories(): Promise<void> {
    let newest = this.o.timeline
    for (const name of this.where.keys()) newest = Math.max(newest, parseInt(name.slice(0, 8), 16))
    for (let tli = 1; tli <= newest + 2; tli++) {
      const name = `${tli.toString(16).toUpperCase().padStart(8, '0')}.history`
      if (this.where.has(name)) continue
      const marker = path.join(this.o.spoolDir, `${ABSENT}${name}`)
      await fsp.writeFile(marker, '', { mode: 0o600 })
      if (this.o.runAs) await fsp.chown(marker, this.o.runAs.uid, this.o.runAs.gid)
    }
  }

  /** The WAL files the repositories hold, for the restore's gap check (prepareRestore). */
  archive(): ArchivedSegment[] {
    return [...this.byTli.values()].flat()
  }

  /**
   * restore_command for postgresql.auto.conf (no credential, only paths): a file already in the
   * spool (prefetched, checked, renamed into place only when whole) is moved to %p by the shell
   * alone, and so is "not found" for a history file no repository holds (a `.none-` marker);
   * anything else goes to the client, which waits for the server. The spool is watched,
   * so a file taken by the shell moves the prefetch window on as a request would.
   */
  restoreCommand(): string {
    const spool = shq(this.o.spoolDir + '/')
    const dot = (prefix: string) => shq(`${this.o.spoolDir}/${prefix}`)
    return `if mv -f ${spool}%f %p 2>/dev/null; then exit 0; fi; if [ -e ${dot(ABSENT)}%f ]; then exit 1; fi; if cp ${dot(KEPT)}%f %p 2>/dev/null; then exit 0; fi; exec ${shq(process.execPath)} ${shq(walGetScript())} ${shq(this.socketPath)} %f %p`
  }

  /** A spooled file that disappeared was taken by restore_command's shell path. */
  private taken(name: string): void {
    const j = this.jobs.get(name)
    const p = parseSegmentName(name)
    if (!j?.done || !p || existsSync(path.join(this.o.spoolDir, name))) return
    this.jobs.delete(name)
    this.stats.served++
    this.ahead(p.tli, p.segNo)
  }

  private answer(c: net.Socket): void {
    let buf = ''
    c.setEncoding('utf8')
    c.on('error', () => undefined)
    c.on('data', (d: string) => {
      buf += d
      const nl = buf.indexOf('\n')
      if (nl < 0) {
        if (buf.length > 256) c.end('ERR request too long\n')
        return
      }
      const name = buf.slice(0, nl).trim()
      buf = ''
      void this.serve(name).then((line) => c.end(`${line}\n`))
    })
  }

  /** One request: "OK <spooled file>", "NONE" or "ERR <reason>". */
  async serve(name: string): Promise<string> {
    if (this.closed) return HISTORY.test(name) ? 'NONE' : 'ERR the restore is over'
    if (!this.where.has(name)) {
      this.stats.missing++
      return 'NONE'
    }
    const p = parseSegmentName(name)
    if (p) this.ahead(p.tli, p.segNo)
    try {
      const file = await this.job(name).promise
      this.jobs.delete(name) // the client moves the file away; asked again, it is fetched again
      this.stats.served++
      if (p) this.ahead(p.tli, p.segNo)
      return `OK ${file}`
    } catch (err) {
      this.jobs.delete(name)
      this.failure ??= err as Error
      return `ERR ${((err as Error).message ?? String(err)).replace(/\s+/g, ' ')}`
    }
  }

  /** Drops what replay went past and keeps the next `prefetch` segments of this timeline coming. */
  private ahead(tli: number, segNo: bigint): void {
    for (const [name, j] of this.jobs) {
      const q = parseSegmentName(name)
      if (q && q.tli === tli && q.segNo < segNo && j.done) {
        this.jobs.delete(name)
        void fsp.rm(path.join(this.o.spoolDir, name), { force: true })
      }
    }
    // Only the segment asked for last keeps its second link (recovery ends in it).
    for (const name of this.kept) {
      const q = parseSegmentName(name)
      if (q && (q.tli !== tli || q.segNo < segNo)) {
        this.kept.delete(name)
        void fsp.rm(path.join(this.o.spoolDir, `${KEPT}${name}`), { force: true })
      }
    }
    const next = (this.byTli.get(tli) ?? []).filter((s) => s.segNo > segNo).slice(0, this.prefetch)
    for (const s of next) this.job(s.name)
  }

  private job(name: string): Job {
    const had = this.jobs.get(name)
    if (had) return had
    const j: Job = { name, done: false, promise: Promise.resolve('') }
    j.promise = this.slot(() => this.fetch(name)).finally(() => {
      j.done = true
    })
    j.promise.catch(() => undefined) // a prefetched file nobody asks for never fails the restore
    this.jobs.set(name, j)
    return j
  }

  private async slot<T>(fn: () => Promise<T>): Promise<T> {
    while (this.running >= this.parallel) await new Promise<void>((r) => this.waiting.push(r))
    this.running++
    try {
      return await fn()
    } finally {
      this.running--
      this.waiting.shift()?.()
    }
  }

  private async fetch(name: string): Promise<string> {
    if (this.closed) throw new Error('the restore is over')
    const o = this.o
    let lastErr: unknown
    for (const r of this.where.get(name) ?? []) {
      try {
        const obj = await r.getBuffer(walKey(o.sysid, name))
        if (!obj) continue
        const raw = await decodeWal(obj, name, o.sysid, o.getKek)
        const dest = path.join(o.spoolDir, name)
        const tmp = path.join(o.spoolDir, `.${name}.tmp`)
        await fsp.writeFile(tmp, raw, { mode: 0o600 })
        if (o.runAs) await fsp.chown(tmp, o.runAs.uid, o.runAs.gid)
        await fsp.rename(tmp, dest)
        if (parseSegmentName(name)) {
          await fsp.link(dest, path.join(o.spoolDir, `${KEPT}${name}`)).then(() => this.kept.add(name), () => undefined)
        }
        this.stats.fetched++
        return dest
      } catch (err) {
        lastErr = err
      }
    }
    throw lastErr ?? new Error(`${walKey(o.sysid, name)} is gone from every repository`)
  }

  async close(): Promise<void> {
    this.closed = true
    this.watcher?.close()
    const server = this.server
    if (server) await new Promise<void>((r) => server.close(() => r()))
    await Promise.allSettled([...this.jobs.values()].map((j) => j.promise))
    if (this.socketDir) await fsp.rm(this.socketDir, { recursive: true, force: true })
  }
}
