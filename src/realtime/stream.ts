import pg from 'pg'
import { LogicalReplicationService } from 'pg-logical-replication'
import { AbstractPlugin } from 'pg-logical-replication/dist/output-plugins/abstract.plugin.js'
import type { Change } from './change.js'
import { PgoutputDecoder } from './pgoutput.js'
import { REALTIME_WAL_LEVEL } from './errors.js'
import { trace } from './trace.js'
import { REALTIME_PUBLICATION, REALTIME_SLOT } from './names.js'

/**
 * The one logical replication stream of a flock: publication `magflock_realtime` and slot
 * `magflock_realtime` on the current primary, pgoutput decoded in-process, every change handed
 * to `onChange` (the hub fans it out). pg-logical-replication runs the replication connection
 * (START_REPLICATION, keepalives, standby status updates); our decoder turns the bytes into rows.
 *
 * The loop never gives up and never throws out: a lost connection, a failover (the primary
 * moved) or a dropped slot reconnects with backoff. Whenever the slot had to be (re)created
 * while we had streamed before, changes in between are lost to clients and `onGap` says so —
 * PostgreSQL 15 has no failover slots, so a promoted replica never has our slot.
 */

export interface PrimaryTarget {
  name: string
  conn: pg.ClientConfig
}

export interface StreamOptions {
  database: string
  capBytes: number
  primary(): Promise<PrimaryTarget>
  onChange(ch: Change): void
  onGap(reason: string): void
  /** Backpressure: while this returns a promise, the stream waits for it. */
  backlog(): Promise<void> | undefined
  log?: { info(o: object, m: string): void; warn(o: object, m: string): void }
}

export interface StreamStatus {
  connected: boolean
  primary: string | null
  slot: string
  publication: string
  retainedBytes: number | null
  lastLsn: string | null
  lastCommitAt: string | null
  restarts: number
  slotRecreations: number
  detail: string
}

type CopyDataListener = (msg: { chunk: Buffer }) => void

class Pgoutput extends AbstractPlugin<{ publication: string; rows(buf: Buffer, start: number): boolean }> {
  get name(): string {
    return 'pgoutput'
  }
  parse(buffer: Buffer): Buffer {
    // Decoded by the stream itself, in order, with its relation cache.
    return buffer
  }
  start(client: pg.Client, slotName: string, lastLsn: string): Promise<unknown> {
    // The hot path: pg-logical-replication handles every XLogData message with an LSN string,
    // a subarray, an event and a promise. Row messages (Insert, Update, Delete: nearly all of
    // them) go straight to the stream's decoder instead; the rest (Begin, Commit, Relation,
    // keepalives) still pass through the library, which then acknowledges at transaction
    // boundaries (the slot cannot advance inside a transaction anyway).
    const conn = (client as unknown as { connection?: { listeners(e: string): CopyDataListener[]; removeListener(e: string, l: CopyDataListener): void; on(e: string, l: CopyDataListener): void } }).connection
    const lib = conn?.listeners('copyData').at(-1)
    if (conn && lib) {
      const rows = this.options.rows
      conn.removeListener('copyData', lib)
      conn.on('copyData', (msg) => {
        const b = msg.chunk
        if (trace && b[0] === 119) trace.received(b)
        // 'w' XLogData: 1 + 8 start + 8 end + 8 clock bytes, then the pgoutput message.
        if (b[0] === 119 && b.length > 25 && (b[25] === 73 || b[25] === 85 || b[25] === 68) && rows(b, 25)) return
        lib(msg)
      })
    }
    return client.query(`START_REPLICATION SLOT "${slotName}" LOGICAL ${lastLsn} (proto_version '1', publication_names '${this.options.publication}')`)
  }
}

export class ChangeStream {
  private stopped = false
  private service: LogicalReplicationService | undefined
  private current: PrimaryTarget | undefined
  private streamedBefore = false
  /**
   * End LSN of the last transaction handed to the hub, and on which primary. A reconnect to the
   * same slot starts there instead of at the slot's confirmed position (acknowledged once a
   * second), so a dropped connection does not deliver the last second of changes twice.
   */
  private resume: { lsn: string; on: string } | undefined
  private loop: Promise<void> | undefined
  private wake: (() => void) | undefined
  private readonly st: StreamStatus = {
    connected: false,
    primary: null,
    slot: REALTIME_SLOT,
    publication: REALTIME_PUBLICATION,
    retainedBytes: null,
    lastLsn: null,
    lastCommitAt: null,
    restarts: 0,
    slotRecreations: 0,
    detail: 'starting',
  }

  constructor(private readonly o: StreamOptions) {}

  status(): StreamStatus {
    return { ...this.st }
  }

  start(): void {
    this.loop ??= this.run()
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.wake?.()
    await this.service?.stop().catch(() => undefined)
    await this.loop
  }

  /** Reconnect now (the primary changed, or the slot must be dropped). */
  async restart(): Promise<void> {
    await this.service?.stop().catch(() => undefined)
  }

  /** Where the stream reads from now (for the failover watcher). */
  target(): PrimaryTarget | undefined {
    return this.current
  }

  /**
   * Retained WAL check (the component calls it periodically): past the cap the slot is dropped
   * and re-created, clients are told changes may be missed. Returns the retained bytes.
   */
  async enforceCap(): Promise<number | null> {
    const t = this.current
    if (!t) return null
    const c = new pg.Client({ ...t.conn, database: this.o.database, connectionTimeoutMillis: 3000 })
    c.on('error', () => undefined) // an idle client's dead server: the next query rejects instead
    try {
      await c.connect()
      const r = await slotInfo(c)
      this.st.retainedBytes = r?.retained ?? null
      if (r && (r.retained > this.o.capBytes || r.walStatus === 'lost')) {
        this.o.log?.warn({ retained: r.retained, cap: this.o.capBytes }, 'realtime slot over its WAL cap: dropping it')
        await this.service?.stop().catch(() => undefined)
        await dropSlot(c)
        this.st.slotRecreations++
        this.o.onGap(`the realtime slot held ${r.retained} bytes of WAL (cap ${this.o.capBytes}) and was dropped; changes may have been missed`)
      }
      return r?.retained ?? null
    } finally {
      await c.end().catch(() => undefined)
    }
  }

  private async run(): Promise<void> {
    let backoff = 250
    while (!this.stopped) {
      try {
        await this.streamOnce()
        backoff = 250
      } catch (err) {
        this.st.detail = `stream error: ${(err as Error).message}`
        this.o.log?.warn({ err: (err as Error).message }, 'realtime stream interrupted; reconnecting')
      }
      this.st.connected = false
      if (this.stopped) break
      this.st.restarts++
      await new Promise<void>((r) => {
        this.wake = r
        setTimeout(r, backoff).unref()
      })
      backoff = Math.min(backoff * 2, 5000)
    }
  }

  private async streamOnce(): Promise<void> {
    const target = await this.o.primary()
    const conn = { ...target.conn, database: this.o.database, connectionTimeoutMillis: 5000, application_name: 'magflock-realtime' }
    const moved = this.current !== undefined && this.current.name !== target.name
    this.current = target
    this.st.primary = target.name
    const created = await prepare(conn, this.o.capBytes, target.name)
    if (created.recreated || ((created.created || moved) && this.streamedBefore)) {
      this.st.slotRecreations++
      this.o.onGap(
        moved
          ? `the change stream moved to a new primary (${target.name}) and re-created its slot; changes committed during the switch may have been missed`
          : created.reason ?? 'the realtime slot was re-created; changes may have been missed',
      )
    }
    if (this.stopped) return
    const from = !created.created && this.resume?.on === target.name ? this.resume.lsn : undefined
    // The library's flowControl awaits every message (two promises each): a third of the
    // per-change cost at 30k changes/s. Messages are handled synchronously instead, and the
    // replication socket is paused while the hub's backlog is too long (backpressure).
    const service = new LogicalReplicationService(conn, { acknowledge: { auto: false, timeoutSeconds: 1 }, flowControl: { enabled: false } })
    this.service = service
    const decoder = new PgoutputDecoder()
    /** Row messages, handed over by the plugin without the library's per-message work. */
    let rows: (buf: Buffer, start: number) => boolean = () => false
    let commitTime = Date.now()
    let xid: number | undefined
    let paused = false
    const backpressure = (): void => {
      if (paused) return
      const wait = this.o.backlog()
      if (!wait) return
      const sock = (service as unknown as { _connection?: { stream?: { pause(): void; resume(): void } } | null })._connection?.stream
      if (!sock) return
      paused = true
      sock.pause()
      void wait.finally(() => {
        paused = false
        sock.resume()
      })
    }
    const change = (ch: Change): void => {
      trace?.decoded(ch)
      this.o.onChange(ch)
    }
    const onMessage = (buf: Buffer, start: number): void => {
      const msg = decoder.decode(buf, start)
      switch (msg.tag) {
        case 'begin':
          commitTime = msg.commitTime
          xid = msg.xid
          trace?.begin(buf, start + 9)
          return undefined
        case 'commit':
          this.st.lastLsn = msg.endLsn
          this.st.lastCommitAt = new Date(msg.commitTime).toISOString()
          this.resume = { lsn: msg.endLsn, on: target.name }
          return undefined
        case 'insert':
          change({ type: 'INSERT', relation: msg.relation, record: msg.new, oldRecord: null, commitTime, xid })
          return backpressure()
        case 'update':
          change({ type: 'UPDATE', relation: msg.relation, record: msg.new, oldRecord: msg.old, commitTime, xid })
          return backpressure()
        case 'delete':
          change({ type: 'DELETE', relation: msg.relation, record: null, oldRecord: msg.old, commitTime, xid })
          return backpressure()
        default:
          return undefined
      }
    }
    rows = (buf, start) => {
      onMessage(buf, start)
      return true
    }
    service.on('data', (_lsn: string, buf: Buffer) => onMessage(buf, 0))
    service.on('heartbeat', (lsn: string, _ts: number, shouldRespond: boolean) => {
      if (shouldRespond) void service.acknowledge(lsn).catch(() => undefined)
    })
    service.on('error', () => undefined)
    service.on('start', () => {
      this.st.connected = true
      this.streamedBefore = true
      this.st.detail = `streaming from ${target.name} (slot ${REALTIME_SLOT})`
      this.o.log?.info({ primary: target.name }, 'realtime change stream started')
    })
    try {
      const plugin = new Pgoutput({ publication: REALTIME_PUBLICATION, rows: (buf, start) => rows(buf, start) })
      await (from ? service.subscribe(plugin, REALTIME_SLOT, from) : service.subscribe(plugin, REALTIME_SLOT))
    } finally {
      this.st.connected = false
      await service.destroy().catch(() => undefined)
      if (this.service === service) this.service = undefined
    }
  }
}

interface SlotRow {
  retained: number
  activePid: number | null
  walStatus: string | null
}

async function slotInfo(c: pg.Client): Promise<SlotRow | undefined> {
  const r = await c.query<{ retained: string | null; active_pid: number | null; wal_status: string | null }>(
    `select pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text as retained, active_pid, wal_status
       from pg_replication_slots where slot_name = $1`,
    [REALTIME_SLOT],
  )
  const row = r.rows[0]
  return row ? { retained: Number(row.retained ?? 0), activePid: row.active_pid, walStatus: row.wal_status } : undefined
}

async function dropSlot(c: pg.Client): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const s = await slotInfo(c)
    if (!s) return
    if (s.activePid) await c.query('select pg_terminate_backend($1)', [s.activePid])
    try {
      await c.query('select pg_drop_replication_slot($1)', [REALTIME_SLOT])
      return
    } catch {
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}

/**
 * Publication and slot on the primary. The publication starts empty: tables are added by the
 * operator (`ALTER PUBLICATION magflock_realtime ADD TABLE …`), as with Supabase, because a
 * FOR ALL TABLES publication would make UPDATE/DELETE fail on every table without a replica
 * identity. A slot over the cap (or lost) is dropped and re-created.
 */
async function prepare(conn: pg.ClientConfig, capBytes: number, instance: string): Promise<{ created: boolean; recreated: boolean; reason?: string }> {
  const c = new pg.Client(conn)
  c.on('error', () => undefined) // an idle client's dead server: the next query rejects instead
  await c.connect()
  try {
    const level = (await c.query<{ wal_level: string }>('show wal_level')).rows[0]?.wal_level
    if (level !== 'logical') throw REALTIME_WAL_LEVEL({ instance, level: level ?? 'unknown' })
    const pub = await c.query('select 1 from pg_publication where pubname = $1', [REALTIME_PUBLICATION])
    if (pub.rowCount === 0) await c.query(`create publication ${REALTIME_PUBLICATION}`)
    const s = await slotInfo(c)
    let recreated = false
    let reason: string | undefined
    if (s && (s.retained > capBytes || s.walStatus === 'lost')) {
      await dropSlot(c)
      recreated = true
      reason = `the realtime slot held ${s.retained} bytes of WAL (cap ${capBytes}) and was dropped; changes may have been missed`
    } else if (s?.activePid) {
      // A walsender of a previous kernel (killed) may still hold the slot for a moment.
      await c.query('select pg_terminate_backend($1)', [s.activePid])
      await new Promise((r) => setTimeout(r, 200))
    }
    if (!s || recreated) {
      await c.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [REALTIME_SLOT])
      return { created: true, recreated, ...(reason ? { reason } : {}) }
    }
    return { created: false, recreated: false }
  } finally {
    await c.end().catch(() => undefined)
  }
}

/** Drops the realtime slot if it exists (realtime disabled: it must not hold WAL back). */
export async function dropRealtimeSlot(conn: pg.ClientConfig): Promise<boolean> {
  const c = new pg.Client({ ...conn, connectionTimeoutMillis: 3000 })
  c.on('error', () => undefined) // an idle client's dead server: the next query rejects instead
  await c.connect()
  try {
    const s = await slotInfo(c)
    if (!s) return false
    await dropSlot(c)
    return true
  } finally {
    await c.end().catch(() => undefined)
  }
}
