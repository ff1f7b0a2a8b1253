import { existsSync } from 'node:fs'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../../../src/platform/ports.js'
import { run } from '../../../src/platform/process.js'
import { createKernelMetrics } from '../../../src/telemetry/metrics.js'
import { registerPostgresCollector, type PgQuery, type PostgresTarget } from '../../../src/telemetry/pg-stats.js'
import { startTestPostgres, type TestPostgres } from '../../helpers/pg.js'

// CI installs promtool (Debian: apt-get install -y prometheus). Missing promtool fails the
// test on purpose: the exposition format is only proven valid by Prometheus' own checker.
const PROMTOOL = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => existsSync(p))

function queryFor(config: pg.ClientConfig): PgQuery {
  return async (sql) => {
    const c = new pg.Client({ ...config, connectionTimeoutMillis: 5_000 })
    await c.connect()
    try {
      return await c.query(sql)
    } finally {
      await c.end()
    }
  }
}

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('Prometheus exposition (kernel metrics + Postgres collector)', () => {
  let db: TestPostgres
  let deadPort: number

  beforeAll(async () => {
    db = await startTestPostgres()
    await db.query('create database app')
    await db.query('create table t(x int); insert into t select generate_series(1, 1000)', [], 'app')
    deadPort = await freePort()
  })

  afterAll(async () => {
    await db?.stop()
  })

  function setup() {
    const metrics = createKernelMetrics()
    metrics.componentState('postgres', 'running')
    metrics.componentRestarted('postgres')
    metrics.eventCounted('kernel.started', true)
    metrics.apiRequest('status', 'GET', 200, 0.002)
    metrics.instanceRestarted('primary')
    const errors: string[] = []
    const targets: PostgresTarget[] = [
      { instance: 'primary', role: 'primary', query: queryFor(db.connection()) },
      { instance: 'r1', role: 'replica', query: queryFor({ ...db.connection(), port: deadPort }) },
      { instance: 'r2', role: 'replica', query: undefined },
    ]
    registerPostgresCollector(metrics.registry, async () => targets, { onError: (i) => errors.push(i) })
    return { registry: metrics.registry, errors }
  }

  it('reports a reachable instance as up with its stats, an unreachable one as down', async () => {
    const { registry, errors } = setup()
    const text = await registry.metrics()
    expect(value(text, 'magflock_postgres_up{instance="primary",role="primary"}')).toBe(1)
    expect(value(text, 'magflock_postgres_up{instance="r1",role="replica"}')).toBe(0)
    expect(value(text, 'magflock_postgres_up{instance="r2",role="replica"}')).toBe(0)
    expect(errors).toEqual(['r1'])
    expect(value(text, 'magflock_postgres_in_recovery{instance="primary"}')).toBe(0)
    expect(value(text, 'magflock_postgres_max_connections{instance="primary"}')).toBeGreaterThan(0)
    expect(value(text, 'magflock_postgres_database_size_bytes{instance="primary",datname="app"}')).toBeGreaterThan(1_000_000)
    expect(value(text, 'magflock_postgres_xact_commit_total{instance="primary",datname="app"}')).toBeGreaterThanOrEqual(0)
    expect(value(text, 'magflock_postgres_connections{instance="primary",state="active"}')).toBeGreaterThanOrEqual(1)
    expect(text).toContain('# TYPE magflock_postgres_tup_inserted_total counter')
    expect(text).not.toContain('instance="r1",datname')
    // Templates are not reported.
    expect(text).not.toContain('datname="template0"')
  })

  it('passes `promtool check metrics` with no lint findings', async () => {
    expect(PROMTOOL, 'promtool is not installed (apt-get install -y prometheus)').toBeDefined()
    const { registry } = setup()
    const text = await registry.metrics()
    const res = await run(PROMTOOL as string, ['check', 'metrics'], { input: text, reject: false, timeoutMs: 30_000 })
    expect(res.stdout + res.stderr).toBe('')
    expect(res.exitCode).toBe(0)
  })

  it('never throws out of a scrape when the instance list itself fails', async () => {
    const metrics = createKernelMetrics({ defaultMetrics: false })
    registerPostgresCollector(metrics.registry, async () => {
      throw new Error('instance registry unavailable')
    })
    const text = await metrics.registry.metrics()
    expect(text).toContain('# TYPE magflock_postgres_up gauge')
    expect(text).not.toContain('magflock_postgres_up{')
  })
})
