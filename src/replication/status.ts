import type pg from 'pg'
import { lsnDiff } from '../postgres/lsn.js'
import { sql } from './pg.js'

/** What the primary reports about each connected standby (pg_stat_replication). */
export interface WalSenderRow {
  name: string
  state: string
  sentLsn: string | null
  flushLsn: string | null
  replayLsn: string | null
  syncState: 'sync' | 'potential' | 'quorum' | 'async'
  lagBytes: number
  replayLagSeconds: number | null
}

export interface PrimaryStatus {
  currentLsn: string
  timeline: number
  syncStandbyNames: string
  senders: WalSenderRow[]
  slots: Array<{ name: string; active: boolean; restartLsn: string | null }>
}

export async function primaryStatus(cfg: pg.ClientConfig): Promise<PrimaryStatus> {
  const rows = await sql<{
    current: string
    timeline: number
    ssn: string
    senders: Array<{ name: string; state: string; sent: string | null; flush: string | null; replay: string | null; sync_state: string; lag_s: number | null }> | null
    slots: Array<{ slot_name: string; active: boolean; restart_lsn: string | null }> | null
  }>(
    cfg,
    `select pg_current_wal_lsn()::text as current,
            (select timeline_id from pg_control_checkpoint())::int as timeline,
            current_setting('synchronous_standby_names') as ssn,
            (select json_agg(json_build_object(
                'name', application_name, 'state', state, 'sent', sent_lsn::text, 'flush', flush_lsn::text,
                'replay', replay_lsn::text, 'sync_state', sync_state,
                'lag_s', extract(epoch from replay_lag)::float8) order by application_name)
               from pg_stat_replication where application_name <> 'pg_basebackup') as senders,
            (select json_agg(json_build_object('slot_name', slot_name, 'active', active, 'restart_lsn', restart_lsn::text) order by slot_name)
               from pg_replication_slots where slot_type = 'physical') as slots`,
  )
  const r = rows[0]
  if (!r) throw new Error('pg_stat_replication query returned no row')
  return {
    currentLsn: r.current,
    timeline: r.timeline,
    syncStandbyNames: r.ssn,
    senders: (r.senders ?? []).map((s) => ({
      name: s.name,
      state: s.state,
      sentLsn: s.sent,
      flushLsn: s.flush,
      replayLsn: s.replay,
      syncState: (['sync', 'potential', 'quorum'].includes(s.sync_state) ? s.sync_state : 'async') as WalSenderRow['syncState'],
      lagBytes: lsnDiff(r.current, s.replay),
      replayLagSeconds: s.lag_s,
    })),
    slots: (r.slots ?? []).map((s) => ({ name: s.slot_name, active: s.active, restartLsn: s.restart_lsn })),
  }
}

/** What a standby says about itself. */
export interface StandbyStatus {
  inRecovery: boolean
  receiveLsn: string | null
  replayLsn: string | null
  /** Seconds since the last replayed transaction committed on the primary (null: none yet). */
  replayDelaySeconds: number | null
  timeline: number
  walReceiver: string | null
}

export async function standbyStatus(cfg: pg.ClientConfig): Promise<StandbyStatus> {
  const rows = await sql<{ rec: boolean; recv: string | null; replay: string | null; delay: number | null; tl: number; wr: string | null }>(
    cfg,
    `select pg_is_in_recovery() as rec, pg_last_wal_receive_lsn()::text as recv, pg_last_wal_replay_lsn()::text as replay,
            extract(epoch from now() - pg_last_xact_replay_timestamp())::float8 as delay,
            (select timeline_id from pg_control_checkpoint())::int as tl,
            (select status from pg_stat_wal_receiver limit 1) as wr`,
  )
  const r = rows[0]
  if (!r) throw new Error('standby status query returned no row')
  return { inRecovery: r.rec, receiveLsn: r.recv, replayLsn: r.replay, replayDelaySeconds: r.delay, timeline: r.tl, walReceiver: r.wr }
}

/** A promoted instance's timeline (pg_control_checkpoint lags until the first checkpoint). */
export async function currentTimeline(cfg: pg.ClientConfig): Promise<number> {
  const r = await sql<{ tl: string }>(cfg, `select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) as tl`)
  return Number.parseInt(r[0]?.tl ?? '0', 16)
}
