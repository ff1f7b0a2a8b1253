import { promises as fsp } from 'node:fs'
import type pg from 'pg'
import path from 'node:path'
import { TIMEOUT } from '../errors/index.js'
import { run } from '../platform/process.js'
import { exists, writeJsonAtomic } from '../platform/fs.js'
import { CATCHUP_TIMEOUT, NOT_A_STANDBY, REPLICA_DIR_EXISTS, REWIND_FAILED, SWITCHOVER_TARGET } from './errors.js'
import { faultPoint } from './fault.js'
import { clearFence, fence, fencePath, type FenceMarker } from './fence.js'
import { compareLsn } from '../postgres/lsn.js'
import {
  chownTree,
  clientConfig,
  createSlot,
  dropSlot,
  quoteIdent,
  replicationChild,
  replicationLogin,
  sleep,
  sql,
  standbySettings,
  withClient,
  writeAutoConf,
  writePassfile,
  writeStandbySignal,
  type PgNode,
  type ReplicationEnv,
} from './pg.js'
import { readControlFile } from '../postgres/control-file.js'
import { primaryStatus, standbyStatus } from './status.js'

/**
 * Local replication actions, one concern each (after Patroni's postgresql/ package). They
 * take explicit inputs and do exactly what they say; choosing *when* belongs to decide()
 * and to the ReplicationManager.
 */

export type Progress = (phase: string, message: string, fraction?: number) => void
const quiet: Progress = () => undefined

export const REPLICA_NAME = /^[a-z][a-z0-9_]{0,39}$/

/** Slot name for a standby: its instance name (already a valid slot name). */
export function slotName(name: string): string {
  return name
}

/** Waits until `standby` streams from `primary` (pg_stat_replication state = streaming). */
export async function waitStreaming(env: ReplicationEnv, primary: PgNode, standby: string, timeoutMs = 60_000, wantSync = false): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      const st = await primaryStatus(clientConfig(env, primary))
      const s = st.senders.find((x) => x.name === standby)
      if (s && s.state === 'streaming' && (!wantSync || s.syncState === 'sync')) return
    } catch {
      // The primary may be restarting; keep polling until the deadline.
    }
    if (Date.now() > deadline) throw TIMEOUT({ what: `${standby} to stream from ${primary.name}`, ms: timeoutMs })
    await sleep(50)
  }
}

/**
 * Clones `primary` into `replica.dataDir` with pg_basebackup -R -S <slot> -C (a slot so the
 * primary keeps the WAL the replica still needs), writes the replica's own settings, starts
 * it and waits until it streams.
 */
export async function createReplica(
  env: ReplicationEnv,
  primary: PgNode,
  replica: PgNode,
  opts: { noSync?: boolean; progress?: Progress; timeoutMs?: number } = {},
): Promise<{ slot: string }> {
  const progress = opts.progress ?? quiet
  const slot = slotName(replica.name)
  if (await exists(path.join(replica.dataDir, 'PG_VERSION'))) {
    throw REPLICA_DIR_EXISTS({ name: replica.name, dir: replica.dataDir })
  }
  await fsp.mkdir(replica.instanceDir, { recursive: true, mode: 0o700 })
  await chownTree(env, replica.instanceDir)
  await fsp.rm(replica.dataDir, { recursive: true, force: true })
  await writePassfile(env, replica)
  // A slot left by an earlier replica of the same name would make -C fail.
  await dropSlot(clientConfig(env, primary), slot)
  progress('clone', `cloning ${primary.name} into ${replica.name} with pg_basebackup`, 0.1)
  await run(
    env.bins.tool('pg_basebackup'),
    [
      '-h', primary.host, '-p', String(primary.port), '-U', replicationLogin(env).user,
      '-D', replica.dataDir, '-R', '-S', slot, '-C', '-X', 'stream', '-c', 'fast',
      ...(opts.noSync ? ['--no-sync'] : []),
    ],
    { runAs: env.runAs, ...replicationChild(env, 'pg_basebackup', { host: primary.host, local: replica }), timeoutMs: opts.timeoutMs ?? 30 * 60_000 },
  )
  progress('configure', `configuring ${replica.name} as a standby of ${primary.name}`, 0.8)
  await writeAutoConf(env, replica.dataDir, standbySettings(env, primary, replica, slot))
  await writeStandbySignal(env, replica.dataDir)
  await fsp.rm(path.join(replica.dataDir, 'postmaster.opts'), { force: true })
  progress('start', `starting ${replica.name} on port ${replica.port}`, 0.9)
  await env.lifecycle.start(replica)
  await waitStreaming(env, primary, replica.name, opts.timeoutMs ?? 60_000)
  progress('done', `${replica.name} is streaming from ${primary.name}`, 1)
  return { slot }
}

/** Stops a replica, drops its slot on the primary and deletes its directory. */
export async function removeReplica(env: ReplicationEnv, primary: PgNode | undefined, replica: PgNode): Promise<{ slotDropped: boolean }> {
  await env.lifecycle.stop(replica, 'fast').catch(() => undefined)
  let slotDropped = false
  if (primary) slotDropped = await dropSlot(clientConfig(env, primary), slotName(replica.name))
  await fsp.rm(replica.instanceDir, { recursive: true, force: true })
  return { slotDropped }
}

/**
 * synchronous_standby_names for a list of synchronous standbys: FIRST 1 of them, in order.
 * An empty list clears it: a name left behind for a standby that is gone makes every commit
 * wait forever (a classic Patroni-era outage), so callers recompute this on every change.
 */
export function syncStandbyNamesValue(names: string[]): string {
  return names.length === 0 ? '' : `FIRST 1 (${names.map(quoteIdent).join(', ')})`
}

export async function setSyncStandbys(env: ReplicationEnv, primary: PgNode, names: string[], client?: pg.Client): Promise<string> {
  const value = syncStandbyNamesValue(names)
  const body = async (c: pg.Client) => {
    const cur = async () => (await c.query<{ v: string }>(`select current_setting('synchronous_standby_names') as v`)).rows[0]?.v
    if ((await cur()) === value) return value
    // ALTER SYSTEM takes no bind parameters; the value is built from validated names only.
    await c.query(`alter system set synchronous_standby_names = '${value.replace(/'/g, "''")}'`)
    await c.query('select pg_reload_conf()')
    // pg_reload_conf() only signals the postmaster; wait until a backend sees the new value.
    for (let i = 0; i < 200 && (await cur()) !== value; i++) await sleep(5)
    return value
  }
  return client ? body(client) : withClient(clientConfig(env, primary), body)
}

/**
 * Promotes a standby and waits until it accepts writes; returns its new timeline. One
 * connection for the whole step (a SCRAM handshake costs more than the promotion itself on a
 * loaded host), and a 10 ms poll instead of pg_promote(wait)'s 100 ms one.
 */
export async function promote(env: ReplicationEnv, node: PgNode, timeoutS = 60, client?: pg.Client, onWritable?: () => void): Promise<{ timeline: number }> {
  const body = async (c: pg.Client) => {
    const rec = async () => (await c.query<{ r: boolean }>('select pg_is_in_recovery() as r')).rows[0]?.r
    if (await rec()) {
      await c.query('select pg_promote(false)')
      const deadline = Date.now() + timeoutS * 1000
      let nudgeAt = Date.now() + 300
      while (await rec()) {
        if (Date.now() > deadline) throw TIMEOUT({ what: `${node.name} to finish promotion`, ms: timeoutS * 1000 })
        if (Date.now() > nudgeAt) {
          // A promote request that races the WAL receiver losing its primary can sit out a 5 s
          // timed wait of the startup process (seen on 15.18). SIGUSR2 is the postmaster's own
          // "promote" signal to the startup process: it re-checks the promote file that
          // pg_promote already wrote (a second pg_promote could leave a stray promote file).
          nudgeAt = Date.now() + 300
          const s = await c.query<{ pid: number }>(`select pid from pg_stat_activity where backend_type = 'startup'`)
          const pid = s.rows[0]?.pid
          if (pid) {
            try {
              process.kill(pid, 'SIGUSR2')
            } catch {
              // gone (promoted meanwhile) or not ours to signal (another host): keep polling
            }
          }
        }
        await sleep(10)
      }
    }
    onWritable?.()
    // A promoted node must not keep a standby's settings; they would mislead a later rewind.
    await c.query('alter system reset primary_conninfo')
    await c.query('alter system reset primary_slot_name')
    const r = await c.query<{ tl: string }>(`select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) as tl`)
    return { timeline: Number.parseInt(r.rows[0]?.tl ?? '0', 16) }
  }
  return client ? body(client) : withClient(clientConfig(env, node), body)
}

/**
 * Points a running standby at a new primary: slot on the new primary first (so it keeps the
 * WAL), then primary_conninfo/primary_slot_name by ALTER SYSTEM + reload (both reloadable
 * since PostgreSQL 13; the WAL receiver restarts and follows the new timeline).
 */
export async function repoint(env: ReplicationEnv, standby: PgNode, newPrimary: PgNode): Promise<void> {
  const slot = slotName(standby.name)
  await createSlot(clientConfig(env, newPrimary), slot)
  // A standby of an older flock may still log in as the superuser: the new conninfo names the
  // replication role, whose password its passfile must hold first.
  await writePassfile(env, standby)
  const s = standbySettings(env, newPrimary, standby, slot)
  await withClient(clientConfig(env, standby), async (c) => {
    const r = await c.query<{ r: boolean }>('select pg_is_in_recovery() as r')
    if (!r.rows[0]?.r) throw NOT_A_STANDBY({ name: standby.name })
    await c.query(`alter system set primary_conninfo = '${String(s.primary_conninfo).replace(/'/g, "''")}'`)
    await c.query(`alter system set primary_slot_name = '${slot}'`)
    await c.query('select pg_reload_conf()')
  })
}

export type RejoinMethod = 'none' | 'rewind' | 'reclone'

/**
 * Turns a stopped (or fenced) old primary into a standby of `newPrimary`: pg_rewind against
 * the new primary when the timelines diverged ("no rewind required" when it was shut down
 * cleanly in a switchover), a fresh clone when rewind is impossible; then standby settings,
 * a slot on the new primary, start, wait for streaming, and only then lift the fence.
 */
export async function rejoin(
  env: ReplicationEnv,
  node: PgNode,
  newPrimary: PgNode,
  opts: {
    progress?: Progress
    noSync?: boolean
    timeoutMs?: number
    allowReclone?: boolean
    /**
     * The switchover case: the node was shut down cleanly with its last checkpoint at this LSN
     * and the new primary replayed past it before promotion, so its new timeline forks after
     * the node's last record and pg_rewind (plus the CHECKPOINT it needs on the new primary,
     * right when clients reconnect there) has nothing to do.
     */
    cleanlyStoppedAt?: string
  } = {},
): Promise<{ method: RejoinMethod }> {
  const progress = opts.progress ?? quiet
  await env.lifecycle.stop(node, 'fast').catch(() => undefined)
  const slot = slotName(node.name)
  let method: RejoinMethod = 'none'
  const usable = await exists(path.join(node.dataDir, 'global', 'pg_control'))
  let rewindError: string | undefined
  if (usable && opts.cleanlyStoppedAt !== undefined) {
    const at = await checkpointLsn(env, node.dataDir).catch(() => undefined)
    if (at !== opts.cleanlyStoppedAt) rewindError = `it is not stopped cleanly at ${opts.cleanlyStoppedAt}`
  } else if (usable) {
    // pg_rewind finishes crash recovery in single-user mode first, and a single-user server
    // refuses standby.signal; the fence marker keeps the instance from starting meanwhile.
    await fsp.rm(path.join(node.dataDir, 'standby.signal'), { force: true })
    // pg_rewind reads the source's timeline from its pg_control, which a fresh promotion
    // updates only at its first checkpoint; before that it reports "same timeline, no rewind
    // required" and the old primary then cannot follow (Patroni checkpoints here too).
    await sql(clientConfig(env, newPrimary), 'checkpoint')
    progress('rewind', `resynchronising ${node.name} from ${newPrimary.name} with pg_rewind`)
    // The replication role has exactly the function grants pg_rewind needs (role.ts).
    const conn = `host=${newPrimary.host} port=${newPrimary.port} user=${replicationLogin(env).user} dbname=postgres connect_timeout=5`
    const res = await run(
      env.bins.tool('pg_rewind'),
      ['--target-pgdata', node.dataDir, '--source-server', conn, ...(opts.noSync ? ['--no-sync'] : [])],
      { runAs: env.runAs, ...replicationChild(env, undefined, { host: newPrimary.host, local: node }), reject: false, timeoutMs: opts.timeoutMs ?? 10 * 60_000 },
    )
    env.log?.('pg_rewind finished', { instance: node.name, exitCode: res.exitCode, output: (res.stdout + '\n' + res.stderr).trim().split('\n').slice(-8).join(' | ') })
    if (res.exitCode === 0) method = /no rewind required/i.test(res.stdout + res.stderr) ? 'none' : 'rewind'
    else rewindError = (res.stderr.trim().split('\n').pop() ?? `exit ${res.exitCode}`).slice(0, 300)
  } else {
    rewindError = 'the data directory is missing or unreadable'
  }
  if (rewindError !== undefined) {
    if (opts.allowReclone === false) throw REWIND_FAILED({ name: node.name, reason: rewindError })
    env.log?.('pg_rewind failed; re-cloning', { instance: node.name, reason: rewindError })
    progress('reclone', `pg_rewind impossible (${rewindError}); re-cloning ${node.name}`)
    await dropSlot(clientConfig(env, newPrimary), slot)
    await writePassfile(env, node)
    await recloneBeside(env, node, async (into) => {
      await run(
        env.bins.tool('pg_basebackup'),
        ['-h', newPrimary.host, '-p', String(newPrimary.port), '-U', replicationLogin(env).user, '-D', into, '-X', 'stream', '-c', 'fast', ...(opts.noSync ? ['--no-sync'] : [])],
        { runAs: env.runAs, ...replicationChild(env, 'pg_basebackup', { host: newPrimary.host, local: node }), timeoutMs: opts.timeoutMs ?? 30 * 60_000 },
      )
    })
    method = 'reclone'
  }
  // Slots of the old primary would pin WAL on what is now a standby.
  const slotsDir = path.join(node.dataDir, 'pg_replslot')
  for (const e of await fsp.readdir(slotsDir).catch(() => [] as string[])) await fsp.rm(path.join(slotsDir, e), { recursive: true, force: true })
  await fsp.rm(path.join(node.dataDir, 'postmaster.opts'), { force: true })
  await writePassfile(env, node)
  await writeAutoConf(env, node.dataDir, standbySettings(env, newPrimary, node, slot))
  await writeStandbySignal(env, node.dataDir)
  await createSlot(clientConfig(env, newPrimary), slot)
  progress('start', `starting ${node.name} as a standby of ${newPrimary.name}`)
  await env.lifecycle.start(node)
  await waitStreaming(env, newPrimary, node.name, opts.timeoutMs ?? 60_000)
  await clearFence(node.instanceDir)
  return { method }
}

/**
 * A re-clone never leaves a node with less than it had: the clone is made beside the data
 * directory (`<data>.reclone`, same filesystem) and only a complete one replaces it, by two
 * renames; the old directory is removed last. If the clone fails (the new primary dies, the
 * disk fills, the kernel is killed), the old data directory is still there, fenced, for
 * another attempt or for an operator who wants the diverged writes in it. A leftover of an
 * interrupted attempt is removed first; a swap interrupted between its two renames is
 * finished from `<data>.diverged` (the old data) on the next attempt.
 */
export async function recloneBeside(env: ReplicationEnv, node: PgNode, clone: (into: string) => Promise<void>): Promise<void> {
  const into = `${node.dataDir}.reclone`
  const old = `${node.dataDir}.diverged`
  if (!(await exists(node.dataDir)) && (await exists(old))) await fsp.rename(old, node.dataDir)
  await fsp.rm(into, { recursive: true, force: true })
  await fsp.rm(old, { recursive: true, force: true })
  try {
    await clone(into)
  } catch (err) {
    await fsp.rm(into, { recursive: true, force: true }).catch(() => undefined)
    throw err
  }
  if (await exists(node.dataDir)) await fsp.rename(node.dataDir, old)
  await fsp.rename(into, node.dataDir)
  await fsp.rm(old, { recursive: true, force: true })
}

export interface SwitchoverPhases {
  /** CHECKPOINT on the primary while it still takes writes (keeps the shutdown checkpoint short). */
  checkpointMs: number
  /** Fast shutdown of the primary until pg_control records its shutdown checkpoint: writes stop at its start. */
  stopMs: number
  /** The target replaying past the shutdown checkpoint. */
  catchupMs: number
  /** The fence marker on the old primary (written and fsynced before the promotion). */
  fenceMs: number
  /** pg_promote until the target accepts writes. */
  promoteMs: number
  /** The old primary's settings reset, its postmaster gone and fenced, registry, other replicas repointed. */
  repointMs: number
  /** The old primary restarted as a standby and streaming. */
  rejoinMs: number
  /** synchronous_standby_names on the new primary, over the standbys that stream from it. */
  syncMs: number
}

export interface SwitchoverResult {
  from: string
  to: string
  /** From the moment the old primary stopped accepting writes to the new one accepting them. */
  writeOutageMs: number
  durationMs: number
  timeline: number
  finalLsn: string
  repointed: string[]
  rejoin: RejoinMethod
  phases: SwitchoverPhases
}

/** "Latest checkpoint location" of a stopped cluster (its shutdown checkpoint). */
async function checkpointLsn(env: ReplicationEnv, dataDir: string): Promise<string> {
  const r = await run(env.bins.tool('pg_controldata'), ['-D', dataDir], { runAs: env.runAs, env: { LC_ALL: 'C' } })
  const m = /Latest checkpoint location:\s+([0-9A-F]+\/[0-9A-F]+)/i.exec(r.stdout)
  const state = /Database cluster state:\s+(.+)/.exec(r.stdout)?.[1]?.trim()
  if (!m) throw new Error('pg_controldata printed no checkpoint location')
  if (state !== 'shut down') throw new Error(`old primary is "${state}", not cleanly shut down`)
  return m[1] as string
}

/** How often the switchover looks at the target's replay position and the stopping primary. */
const SWITCHOVER_POLL_MS = 10

/**
 * Planned role swap with zero acknowledged writes lost. The write outage runs from step 2 to
 * the end of step 4, so everything that can happen before or after it does:
 *  1. CHECKPOINT on the primary while it still takes writes (the shutdown checkpoint is then
 *     tiny), and one connection to the target opened in advance (a SCRAM handshake costs
 *     more than a poll);
 *  2. fast shutdown of the primary (SIGINT, as pg_ctl sends): from here no write is accepted;
 *     pg_control is read every 10 ms until it records the shutdown checkpoint, whose LSN is
 *     the last WAL the primary will ever write (every acknowledged commit is before it);
 *  3. wait until the target has replayed past it (Postgres' walsenders ship everything up to
 *     and including the shutdown checkpoint before the postmaster exits), polled every 10 ms
 *     on the open connection; on timeout the old primary is started again;
 *  4. fence marker on the old primary, then promote the target on the same connection
 *     (pg_promote(wait => false) polled every 10 ms: pg_promote(wait => true) looks only
 *     every 100 ms);
 *  5. the rest of the fence once the old postmaster has exited, registry, repoint the other
 *     replicas; 6. restart the old primary as a standby (no pg_rewind: it stopped cleanly at
 *     a point the target replayed, so the new timeline forks after its last record);
 *  7. synchronous_standby_names over the standbys that stream from the new primary (never a
 *     name nobody answers to: commits would hang on it).
 */
export async function switchover(
  env: ReplicationEnv,
  primary: PgNode,
  target: PgNode,
  others: PgNode[],
  opts: { catchupTimeoutMs?: number; syncNames?: (newPrimary: string) => string[]; progress?: Progress; noSync?: boolean; onPromoted?: () => Promise<void> | void } = {},
): Promise<SwitchoverResult> {
  const progress = opts.progress ?? quiet
  const t0 = Date.now()
  const st = await standbyStatus(clientConfig(env, target)).catch((err: Error) => {
    throw SWITCHOVER_TARGET({ reason: `${target.name} is unreachable (${err.message})` }, { cause: err })
  })
  if (!st.inRecovery) throw SWITCHOVER_TARGET({ reason: `${target.name} is not a standby` })
  const pst = await primaryStatus(clientConfig(env, primary))
  if (!pst.senders.some((s) => s.name === target.name && s.state === 'streaming')) {
    throw SWITCHOVER_TARGET({ reason: `${target.name} is not streaming from ${primary.name}` })
  }
  progress('checkpoint', `checkpoint on ${primary.name}`, 0.1)
  await sql(clientConfig(env, primary), 'checkpoint')
  const tCheckpoint = Date.now()

  const catchupMs = opts.catchupTimeoutMs ?? 30_000
  const r = await withClient(clientConfig(env, target), async (c) => {
    const replayLsn = async () => (await c.query<{ l: string | null }>('select pg_last_wal_replay_lsn()::text as l')).rows[0]?.l ?? null
    await replayLsn()
    progress('stop', `stopping writes: shutting ${primary.name} down cleanly`, 0.2)
    const tStop = Date.now()
    // Writes stop at the signal. The postmaster exits only after its walsenders have shipped
    // the shutdown checkpoint and heard back, and after every child is gone; the final LSN is
    // known earlier, when pg_control says "shut down", and no WAL follows that checkpoint.
    let exited = false
    let stopError: unknown
    const stopping = env.lifecycle.stop(primary, 'fast', { pollMs: SWITCHOVER_POLL_MS }).then(
      () => void (exited = true),
      (err: unknown) => void ((stopError = err), (exited = true)),
    )
    let finalLsn: string | undefined
    while (finalLsn === undefined) {
      const ctl = await readControlFile(primary.dataDir).catch(() => undefined)
      if (ctl?.shutDown) finalLsn = ctl.checkpointLsn
      else if (exited) {
        if (stopError) throw stopError
        finalLsn = await checkpointLsn(env, primary.dataDir)
      } else await sleep(SWITCHOVER_POLL_MS)
    }
    const tStopped = Date.now()

    progress('catchup', `waiting for ${target.name} to replay past ${finalLsn}`, 0.4)
    const deadline = Date.now() + catchupMs
    for (;;) {
      const replay = await replayLsn()
      if (compareLsn(replay, finalLsn) > 0) break
      if (Date.now() > deadline) {
        await stopping
        await env.lifecycle.start(primary)
        throw CATCHUP_TIMEOUT({ name: target.name, targetLsn: finalLsn, replayLsn: replay ?? 'none', ms: catchupMs })
      }
      await sleep(SWITCHOVER_POLL_MS)
    }
    const tCaughtUp = Date.now()

    progress('promote', `promoting ${target.name}`, 0.6)
    // The marker before the promotion: nothing may start the old primary as a primary again
    // until it has rejoined (it accepts no connection while it finishes shutting down).
    await writeJsonAtomic(fencePath(primary.instanceDir), { name: primary.name, reason: `switchover to ${target.name}`, fencedAt: new Date().toISOString(), newPrimary: target.name } satisfies FenceMarker)
    const tFenced = Date.now()
    // The outage ends when the target accepts writes, before promote() tidies its settings.
    let tPromoted = 0
    const { timeline } = await promote(env, target, 60, c, () => (tPromoted = Date.now()))
    // The rest of the fence (no process left, standby.signal) once the postmaster is gone.
    await stopping
    await fence(env, primary, `switchover to ${target.name}`, target.name)
    return { finalLsn, timeline, tStop, tStopped, tCaughtUp, tFenced, tPromoted }
  })
  const { finalLsn, timeline, tStop, tStopped, tCaughtUp, tFenced, tPromoted } = r
  await opts.onPromoted?.()

  progress('repoint', `repointing ${others.length} other replica(s)`, 0.7)
  const repointed: string[] = []
  for (const o of others) {
    await repoint(env, o, target)
    repointed.push(o.name)
  }
  const tRepointed = Date.now()
  progress('rejoin', `restarting ${primary.name} as a standby of ${target.name}`, 0.8)
  const { method } = await rejoin(env, primary, target, { noSync: opts.noSync ?? false, cleanlyStoppedAt: finalLsn })
  const tRejoined = Date.now()

  progress('sync', `setting the synchronous standbys of ${target.name}`, 0.9)
  const wanted = opts.syncNames?.(target.name) ?? []
  if (wanted.length > 0) {
    // Repointed standbys reconnect within moments; name only those that stream (non-strict).
    for (const o of others.filter((x) => wanted.includes(x.name))) await waitStreaming(env, target, o.name, 15_000).catch(() => undefined)
    const streaming = new Set((await primaryStatus(clientConfig(env, target))).senders.filter((s) => s.state === 'streaming').map((s) => s.name))
    await setSyncStandbys(env, target, wanted.filter((n) => streaming.has(n)))
  }
  const tEnd = Date.now()
  const phases: SwitchoverPhases = {
    checkpointMs: tCheckpoint - t0,
    stopMs: tStopped - tStop,
    catchupMs: tCaughtUp - tStopped,
    fenceMs: tFenced - tCaughtUp,
    promoteMs: tPromoted - tFenced,
    repointMs: tRepointed - tPromoted,
    rejoinMs: tRejoined - tRepointed,
    syncMs: tEnd - tRejoined,
  }
  env.log?.('switchover finished', { from: primary.name, to: target.name, writeOutageMs: tPromoted - tStop, ...phases })
  progress('done', `${target.name} is the primary; ${primary.name} follows it`, 1)
  return { from: primary.name, to: target.name, writeOutageMs: tPromoted - tStop, durationMs: tEnd - t0, timeline, finalLsn, repointed, rejoin: method, phases }
}

export interface FailoverResult {
  from: string
  to: string
  timeline: number
  repointed: string[]
  /** Replicas that could not be repointed now (unreachable); the monitor retries them. */
  notRepointed: Array<{ name: string; error: string }>
  durationMs: number
  killed: number[]
  /** Milliseconds per phase, for the benchmark and the failover event. */
  phases: { fenceMs: number; promoteMs: number; syncMs: number; repointMs: number }
}

/**
 * Unplanned promotion: fence the old primary for certain (every process killed, standby.signal,
 * fence marker) BEFORE promoting, so there is no instant with two writable primaries; then
 * promote, set the new primary's synchronous standbys and repoint the others.
 */
export async function failover(
  env: ReplicationEnv,
  old: PgNode,
  target: PgNode,
  others: PgNode[],
  opts: { reason: string; syncNames?: string[]; progress?: Progress; onPromoted?: () => Promise<void> | void },
): Promise<FailoverResult> {
  const progress = opts.progress ?? quiet
  const t0 = Date.now()
  progress('fence', `fencing ${old.name}`, 0.1)
  const { killed } = await fence(env, old, opts.reason, target.name)
  const t1 = Date.now()
  faultPoint('after-fence')
  progress('promote', `promoting ${target.name}`, 0.4)
  // One connection for promotion and sync names: a handshake is dearer than the promotion.
  const { timeline, t2, t3 } = await withClient(clientConfig(env, target), async (c) => {
    const { timeline } = await promote(env, target, 60, c)
    const t2 = Date.now()
    faultPoint('after-promote')
    await opts.onPromoted?.()
    // Non-strict sync mode: only standbys that can follow the new primary are named; an empty
    // list rather than a name nobody answers to (commits would hang).
    await setSyncStandbys(env, target, opts.syncNames ?? [], c)
    return { timeline, t2, t3: Date.now() }
  })
  progress('repoint', `repointing ${others.length} other replica(s)`, 0.8)
  const repointed: string[] = []
  const notRepointed: FailoverResult['notRepointed'] = []
  for (const o of others) {
    try {
      await repoint(env, o, target)
      repointed.push(o.name)
    } catch (err) {
      notRepointed.push({ name: o.name, error: (err as Error).message })
    }
  }
  const t4 = Date.now()
  return {
    from: old.name, to: target.name, timeline, repointed, notRepointed, durationMs: t4 - t0, killed,
    phases: { fenceMs: t1 - t0, promoteMs: t2 - t1, syncMs: t3 - t2, repointMs: t4 - t3 },
  }
}
