import path from 'node:path'
import { promises as fsp } from 'node:fs'
import type pg from 'pg'
import type { OsUser } from '../platform/os-user.js'
import { spawnLong } from '../platform/process.js'
import type { PgBinaries } from '../postgres/binaries.js'
import { lsnToBigInt } from './manifest.js'
import { withClient } from './sql.js'
import { pgEnv } from './tools.js'
import { listArchive, segmentNo, WAL_SEGMENT_BYTES } from './wal.js'

/**
 * Continuous WAL archiving with a supervised `pg_receivewal` and a physical replication slot
 * (why not archive_command: docs/backup.md). The slot guarantees no gap while the receiver
 * is down; the price is WAL piling up in pg_wal, which archiveLag() measures and the
 * wal-archiver component alerts on.
 */
export const ARCHIVE_SLOT = 'magflock_wal_archive'
/** Operation lock an in-place restore holds; the wal-archiver does not (re)start meanwhile. */
export const ARCHIVE_LOCK = 'wal-archive'

/**
 * Creates the archive slot, or reclaims it: only our receiver streams from it, so a walsender
 * active on it when we are about to start belongs to an orphan (a pg_receivewal of a killed
 * kernel); it is terminated, else the new receiver fails with "slot is active" forever.
 */
export async function ensureArchiveSlot(conn: pg.ClientConfig, slot = ARCHIVE_SLOT): Promise<void> {
  await withClient(conn, async (c) => {
    const r = await c.query<{ active_pid: number | null }>('select active_pid from pg_replication_slots where slot_name = $1', [slot])
    if ((r.rowCount ?? 0) === 0) {
      await c.query('select pg_create_physical_replication_slot($1, true)', [slot])
      return
    }
    const deadline = Date.now() + 10_000
    let holder = r.rows[0]?.active_pid ?? null
    while (holder !== null && Date.now() < deadline) {
      await c.query('select pg_terminate_backend($1)', [holder])
      await new Promise((res) => setTimeout(res, 100))
      const again = await c.query<{ active_pid: number | null }>('select active_pid from pg_replication_slots where slot_name = $1', [slot])
      holder = again.rows[0]?.active_pid ?? null
    }
  })
}

export interface WalReceiver {
  pid: number | undefined
  /** Resolves with the exit once pg_receivewal ends (for supervision). */
  exited: Promise<{ exitCode: number | undefined; signal: string | undefined }>
  /** The end of what pg_receivewal wrote to stderr (why it stopped). */
  stderrTail(): string
  stop(): Promise<void>
}

export async function startWalReceiver(o: {
  walDir: string
  conn: pg.ClientConfig
  bins: PgBinaries
  runAs?: OsUser | undefined
  slot?: string
}): Promise<WalReceiver> {
  const slot = o.slot ?? ARCHIVE_SLOT
  await fsp.mkdir(o.walDir, { recursive: true, mode: 0o700 })
  if (o.runAs) await fsp.chown(o.walDir, o.runAs.uid, o.runAs.gid)
  await ensureArchiveSlot(o.conn, slot)
  const child = spawnLong(o.bins.tool('pg_receivewal'), ['-D', o.walDir, '-S', slot, '--no-loop', '--no-password', '-s', '1'], {
    runAs: o.runAs,
    env: pgEnv(o.conn),
    detached: false,
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let tail = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (c: string) => {
    tail = (tail + c).slice(-2000)
  })
  const exited = child.then(
    (r) => ({ exitCode: r.exitCode, signal: r.signal }),
    (e: { exitCode?: number; signal?: string }) => ({ exitCode: e.exitCode, signal: e.signal }),
  )
  let stopped = false
  return {
    pid: child.pid,
    exited,
    stderrTail: () => tail,
    async stop() {
      if (stopped) return
      stopped = true
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(t)
    },
  }
}

export interface ArchiveLag {
  /** Bytes between the server's current WAL position and what the archive slot confirmed. */
  lagBytes: number
  /** Newest fully archived segment, if any. */
  newestSegment: string | undefined
  slotActive: boolean
}

export async function archiveLag(conn: pg.ClientConfig, walDir: string, slot = ARCHIVE_SLOT): Promise<ArchiveLag> {
  const r = await withClient(conn, (c) =>
    c.query<{ cur: string; flushed: string | null; active: boolean | null }>(
      `select pg_current_wal_lsn()::text as cur,
              (select coalesce(restart_lsn, '0/0')::text from pg_replication_slots where slot_name = $1) as flushed,
              (select active from pg_replication_slots where slot_name = $1) as active`,
      [slot],
    ),
  )
  const row = r.rows[0]
  const archive = (await listArchive(walDir)).filter((s) => !s.partial)
  const cur = lsnToBigInt(row?.cur ?? '0/0')
  const flushed = lsnToBigInt(row?.flushed ?? '0/0')
  return { lagBytes: Number(cur > flushed ? cur - flushed : 0n), newestSegment: archive[archive.length - 1]?.name, slotActive: Boolean(row?.active) }
}

/** Waits until the archive holds the segment containing `lsn` completely (after pg_switch_wal). */
export async function waitForArchived(walDir: string, lsn: string, timeoutMs = 30_000): Promise<void> {
  // The byte before `lsn` (pg_switch_wal may return the first byte of the next segment).
  const b = lsnToBigInt(lsn)
  const want = segmentNo(lsn) - (b > 0n && b % WAL_SEGMENT_BYTES === 0n ? 1n : 0n)
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const done = (await listArchive(walDir)).some((s) => !s.partial && s.segNo >= want)
    if (done) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`WAL up to ${lsn} did not reach the archive within ${timeoutMs} ms`)
}

/**
 * After pg_receivewal stopped on a full filesystem: a `.partial` segment it could not pad to
 * full size (pg_receivewal pads a new segment with zeros before writing WAL into it) makes the
 * next pg_receivewal refuse to start ("has N bytes, should be 0 or 16777216"). It holds no WAL
 * the server does not still have — the slot's restart position is at or before it, so the
 * segment is streamed again — and is removed. Returns the names removed.
 */
export async function dropTornPartials(walDir: string): Promise<string[]> {
  const removed: string[] = []
  for (const n of await fsp.readdir(walDir).catch(() => [] as string[])) {
    if (!/^[0-9A-F]{24}\.partial$/.test(n)) continue
    const st = await fsp.stat(path.join(walDir, n)).catch(() => undefined)
    if (st && BigInt(st.size) !== WAL_SEGMENT_BYTES) {
      await fsp.rm(path.join(walDir, n), { force: true })
      removed.push(n)
    }
  }
  return removed
}
