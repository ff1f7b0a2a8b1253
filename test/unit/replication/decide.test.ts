import { describe, expect, it } from 'vitest'
import { decide, rankCandidates, type Desired, type Observed, type PrimaryObservation, type ReplicaObservation } from '../../../src/replication/decide.js'
import { compareLsn, formatLsn, lsnDiff, parseLsn } from '../../../src/postgres/lsn.js'

const NOW = 1_000_000

function primary(p: Partial<PrimaryObservation> = {}): PrimaryObservation {
  return { name: 'p0', reachable: true, writable: true, processAlive: true, downSince: undefined, restartFailed: false, fenced: false, ...p }
}
function down(ms: number, p: Partial<PrimaryObservation> = {}): PrimaryObservation {
  return primary({ reachable: false, writable: false, processAlive: false, downSince: NOW - ms, ...p })
}
function replica(name: string, replayLsn: string | undefined, r: Partial<ReplicaObservation> = {}): ReplicaObservation {
  return { name, reachable: true, inRecovery: true, replayLsn, lastSyncState: 'async', fenced: false, ...r }
}
function obs(o: Partial<Observed>): Observed {
  return { now: NOW, primary: primary(), replicas: [], topologyLockHolder: undefined, isLeader: true, ...o }
}
const desired: Desired = { failoverEnabled: true, graceMs: 1000, syncMode: false }

describe('lsn', () => {
  it('parses, formats and compares 64-bit positions exactly', () => {
    expect(formatLsn(parseLsn('16/B374D848'))).toBe('16/B374D848')
    expect(compareLsn('0/3000060', '0/3000028')).toBe(1)
    expect(compareLsn('1/0', '0/FFFFFFFF')).toBe(1)
    expect(compareLsn(undefined, '0/1')).toBe(-1)
    expect(lsnDiff('0/3000100', '0/3000000')).toBe(256)
    expect(lsnDiff('0/1', '0/2')).toBe(0)
    expect(() => parseLsn('nope')).toThrow()
  })
})

describe('decide (failover monitor)', () => {
  const table: Array<{ name: string; o: Partial<Observed>; d?: Partial<Desired>; action: string; sentence: RegExp; to?: string; target?: string }> = [
    {
      name: 'does nothing when not the leader',
      o: { isLeader: false, primary: down(5000), replicas: [replica('r1', '0/5')] },
      action: 'none',
      sentence: /^not the leader/,
    },
    {
      name: 'reports a healthy primary',
      o: { replicas: [replica('r1', '0/5'), replica('r2', '0/5', { reachable: false })] },
      action: 'none',
      sentence: /^primary p0 is healthy; 1 of 2 replicas reachable$/,
    },
    {
      name: 'never counts a fenced, stopped old primary as a reachable replica',
      o: { replicas: [replica('r1', '0/5'), replica('old', undefined, { fenced: true, reachable: false, inRecovery: undefined })] },
      action: 'none',
      sentence: /^primary p0 is healthy; 1 of 1 replicas reachable; 1 fenced \(stopped; `magflock replica rejoin` brings it back\)$/,
    },
    {
      name: 'a fenced member observed as reachable (cheap tick) is still not counted',
      o: { replicas: [replica('old', '0/5', { fenced: true })] },
      action: 'none',
      sentence: /^primary p0 is healthy; 0 of 0 replicas reachable; 1 fenced/,
    },
    {
      name: 'an operator failover of a primary nobody saw go down invents no duration',
      o: { primary: primary({ reachable: false, writable: false, downSince: undefined }), replicas: [replica('r1', '0/5')] },
      d: { manual: true },
      action: 'failover',
      to: 'r1',
      sentence: /^promote r1: primary p0 unreachable and r1 is the only eligible replica/,
    },
    {
      name: 'waits out the grace period while the supervisor may restart the primary',
      o: { primary: down(400), replicas: [replica('r1', '0/5')] },
      action: 'wait',
      sentence: /^primary p0 unreachable for 0\.4 s; giving it until 1\.0 s to restart in place$/,
    },
    {
      name: 'promotes the replica with the highest replayed LSN after the grace period',
      o: { primary: down(1200), replicas: [replica('r1', '0/3000060'), replica('r2', '0/3000028')] },
      action: 'failover',
      to: 'r1',
      sentence: /^promote r1: primary p0 unreachable for 1\.2 s and r1 has the highest replayed LSN \(0\/3000060\)$/,
    },
    {
      name: 'compares LSNs numerically, not as text',
      o: { primary: down(2000), replicas: [replica('r1', '0/FFFFFFFF'), replica('r2', '1/0')] },
      action: 'failover',
      to: 'r2',
      sentence: /^promote r2:/,
    },
    {
      name: 'fails over at once when the supervisor cannot restart the primary',
      o: { primary: down(100, { restartFailed: true }), replicas: [replica('r1', '0/5')] },
      action: 'failover',
      to: 'r1',
      sentence: /^promote r1: primary p0 unreachable for 0\.1 s and cannot be restarted and r1 is the only eligible replica/,
    },
    {
      name: 'fails over at once when a fenced primary (interrupted failover) is seen, without waiting the grace period',
      o: { primary: down(50, { fenced: true }), replicas: [replica('r1', '0/5')] },
      action: 'failover',
      to: 'r1',
      sentence: /^promote r1: primary p0 is fenced and r1 is the only eligible replica/,
    },
    {
      name: 'finishes at once a failover whose replica was already promoted before a kernel died',
      o: { primary: down(0, { fenced: true }), replicas: [replica('r1', '0/5', { inRecovery: false })] },
      action: 'failover',
      to: 'r1',
      sentence: /^finish failover to r1: primary p0 is fenced and r1 already accepts writes$/,
    },
    {
      name: 'waits past the grace period for a restart in place that is in crash recovery',
      o: { primary: down(2500, { processAlive: true, starting: true }), replicas: [replica('r1', '0/5')] },
      d: { startTimeoutMs: 60_000 },
      action: 'wait',
      sentence: /^primary p0 is restarting in place \(down for 2\.5 s\); waiting for the restart to succeed or fail$/,
    },
    {
      name: 'fails over when the restart in place overruns the start timeout',
      o: { primary: down(61_000, { processAlive: true, starting: true }), replicas: [replica('r1', '0/5')] },
      d: { startTimeoutMs: 60_000 },
      action: 'failover',
      to: 'r1',
      sentence: /^promote r1: primary p0 unreachable for 61\.0 s/,
    },
    {
      name: 'fails over at once when the restart in place fails, even while a postmaster is starting',
      o: { primary: down(300, { processAlive: true, starting: true, restartFailed: true }), replicas: [replica('r1', '0/5')] },
      d: { startTimeoutMs: 60_000 },
      action: 'failover',
      to: 'r1',
      sentence: /cannot be restarted/,
    },
    {
      name: 'a hung primary that is not starting gets only the grace period',
      o: { primary: down(1200, { processAlive: true, starting: false }), replicas: [replica('r1', '0/5')] },
      d: { startTimeoutMs: 60_000 },
      action: 'failover',
      to: 'r1',
      sentence: /^promote r1:/,
    },
    {
      name: 'still waits for a restart in place while no restart attempt has failed',
      o: { primary: down(900, { restartFailed: false }), replicas: [replica('r1', '0/5')] },
      action: 'wait',
      sentence: /giving it until 1\.0 s to restart in place$/,
    },
    {
      name: 'refuses while a switchover holds the topology lock',
      o: { primary: down(5000, { restartFailed: true }), replicas: [replica('r1', '0/5')], topologyLockHolder: 'switchover' },
      action: 'none',
      sentence: /^no failover: switchover holds the topology lock \(primary p0 is down\)$/,
    },
    {
      name: 'refuses while a restore holds the topology lock',
      o: { primary: down(5000), replicas: [replica('r1', '0/5')], topologyLockHolder: 'backup restore' },
      action: 'none',
      sentence: /backup restore holds the topology lock/,
    },
    {
      name: 'does not fail over when automatic failover is disabled',
      o: { primary: down(5000), replicas: [replica('r1', '0/5')] },
      d: { failoverEnabled: false },
      action: 'none',
      sentence: /automatic failover is disabled \(replication\.failover\.enabled=false\)/,
    },
    {
      name: 'in sync mode only promotes a synchronous standby, even if an async one is ahead',
      o: { primary: down(5000), replicas: [replica('r1', '0/9'), replica('r2', '0/5', { lastSyncState: 'sync' })] },
      d: { syncMode: true },
      action: 'failover',
      to: 'r2',
      sentence: /^promote r2:/,
    },
    {
      name: 'in sync mode refuses when no synchronous standby is left',
      o: { primary: down(5000), replicas: [replica('r1', '0/9', { lastSyncState: 'potential' })] },
      d: { syncMode: true },
      action: 'none',
      sentence: /but no replica can take over: r1 is not a synchronous standby$/,
    },
    {
      name: 'skips unreachable and fenced replicas',
      o: { primary: down(5000), replicas: [replica('r1', '0/9', { reachable: false }), replica('r2', '0/8', { fenced: true }), replica('r3', '0/1')] },
      action: 'failover',
      to: 'r3',
      sentence: /^promote r3: .* r3 is the only eligible replica/,
    },
    {
      name: 'says why nobody can take over',
      o: { primary: down(5000), replicas: [replica('r1', '0/9', { reachable: false })] },
      action: 'none',
      sentence: /^primary p0 unreachable for 5\.0 s but no replica can take over: r1 unreachable$/,
    },
    {
      name: 'says there are no replicas',
      o: { primary: down(5000), replicas: [] },
      action: 'none',
      sentence: /no replica can take over: there are no replicas$/,
    },
    {
      name: 'honours an operator failover to a named replica without waiting',
      o: { replicas: [replica('r1', '0/5'), replica('r2', '0/5')] },
      d: { manual: true, target: 'r2' },
      action: 'failover',
      to: 'r2',
      sentence: /^promote r2: operator requested a failover from p0 and r2 was requested$/,
    },
    {
      name: 'refuses an operator target that is behind another replica without --force',
      o: { primary: down(5000), replicas: [replica('r1', '0/9'), replica('r2', '0/5')] },
      d: { manual: true, target: 'r2' },
      action: 'none',
      sentence: /^no failover to r2: r1 has replayed more WAL .*--force/,
    },
    {
      name: 'accepts that target with --force',
      o: { primary: down(5000), replicas: [replica('r1', '0/9'), replica('r2', '0/5')] },
      d: { manual: true, target: 'r2', force: true },
      action: 'failover',
      to: 'r2',
      sentence: /^promote r2/,
    },
    {
      name: 'refuses an unknown target',
      o: { primary: down(5000), replicas: [replica('r1', '0/9')] },
      d: { manual: true, target: 'nope' },
      action: 'none',
      sentence: /nope is not a replica of this flock/,
    },
    {
      name: 'finishes a failover that was interrupted after the promotion',
      o: { primary: down(5000, { fenced: true }), replicas: [replica('r1', '0/9'), replica('r2', '0/5', { inRecovery: false })] },
      action: 'failover',
      to: 'r2',
      sentence: /^finish failover to r2: primary p0 is fenced and r2 already accepts writes$/,
    },
    {
      name: 'fences a second writable instance (never two primaries)',
      o: { replicas: [replica('r1', '0/9', { inRecovery: false })] },
      action: 'fence',
      target: 'r1',
      sentence: /^fence r1: p0 and r1 both accept writes and p0 is the registered primary$/,
    },
    {
      name: 'never proposes a promotion while the primary is writable',
      o: { primary: primary({ downSince: NOW - 9000 }), replicas: [replica('r1', '0/9')] },
      action: 'none',
      sentence: /healthy/,
    },
  ]

  for (const c of table) {
    it(c.name, () => {
      const d = decide(obs(c.o), { ...desired, ...(c.d ?? {}) })
      expect(d.action).toBe(c.action)
      expect(d.sentence).toMatch(c.sentence)
      if (c.to) expect(d.action === 'failover' && d.to).toBe(c.to)
      if (c.target) expect(d.action === 'fence' && d.target).toBe(c.target)
    })
  }

  it('ranks eligible candidates first, by replayed LSN then name', () => {
    const r = rankCandidates([replica('b', '0/5'), replica('a', '0/5'), replica('c', '0/7'), replica('d', undefined)], { syncMode: false })
    expect(r.map((x) => x.name)).toEqual(['c', 'a', 'b', 'd'])
    expect(r[3]?.eligible).toBe(false)
  })
})
