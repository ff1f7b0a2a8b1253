import { tlsChecks } from '../tls/doctor.js'
import { promises as fsp, statfsSync } from 'node:fs'
import path from 'node:path'
import type { MagflockConfig } from '../config/schema.js'
import type { StateLayout } from '../platform/paths.js'
import { isPortFree } from '../platform/ports.js'
import { lookupUser } from '../platform/os-user.js'
import { discoverySteps, findPgBinaries } from '../postgres/binaries.js'
import { kernelLiveness } from '../kernel/state.js'
import { openSecretStore } from '../secrets/store.js'

export type CheckStatus = 'ok' | 'warn' | 'fail'
export interface Check {
  name: string
  status: CheckStatus
  detail: string
  hint?: string
}

/**
 * `magflock doctor`: everything `up` needs from the machine, checked without changing
 * anything (no files written, no processes started).
 */
export async function runChecks(layout: StateLayout, config: MagflockConfig, environ: NodeJS.ProcessEnv = process.env): Promise<Check[]> {
  const checks: Check[] = []
  const major = Number(process.versions.node.split('.')[0])
  checks.push(
    major >= 22
      ? { name: 'node', status: 'ok', detail: `Node.js ${process.version} at ${process.execPath}` }
      : { name: 'node', status: 'fail', detail: `Node.js ${process.version} is too old (need >= 22)`, hint: 'In a clone, `npm ci` installs the project\'s Node 24 (node_modules/node) and `./magflock …` runs on it.' },
  )

  try {
    const bins = findPgBinaries(config.postgres.binDir)
    const steps = discoverySteps(config.postgres.binDir)
    const tools = ['pg_ctl', 'pg_isready', 'psql', 'pg_dump', 'pg_restore', 'pg_basebackup', 'pg_receivewal', 'pg_rewind', 'pg_verifybackup'] as const
    const missing = tools.filter((t) => !bins.has(t))
    checks.push({
      name: 'postgres binaries',
      status: 'ok',
      detail: `PostgreSQL ${bins.version} in ${bins.binDir} (found via ${bins.source}; looked at ${steps.map((s) => `${s.source}${s.dir ? `=${s.dir}` : ''}${s.usable ? '' : ' ✗'}`).join(', ')})`,
    })
    checks.push(
      missing.length === 0
        ? { name: 'postgres tools', status: 'ok', detail: `all present: ${tools.join(', ')}` }
        : {
            name: 'postgres tools',
            status: 'warn',
            detail: `missing: ${missing.join(', ')}; \`up\` works, but ${missingFeatures(missing).join(', ')} are unavailable`,
            hint: 'Install the full PostgreSQL client/server package (Debian: postgresql-15), or set postgres.binDir to a directory that has them.',
          },
    )
  } catch (err) {
    checks.push({ name: 'postgres binaries', status: 'fail', detail: (err as Error).message, hint: (err as { hint?: string }).hint ?? '' })
  }

  if (process.getuid?.() === 0) {
    try {
      const u = lookupUser(config.postgres.osUser)
      checks.push({ name: 'os user', status: 'ok', detail: `running as root: Postgres will run as ${u.name} (uid ${u.uid})` })
      const blocked = await untraversable(layout.root)
      checks.push(
        blocked
          ? { name: 'permissions', status: 'fail', detail: `${blocked} is not traversable by ${u.name}`, hint: `chmod o+x ${blocked}, or use --state-dir somewhere ${u.name} can reach.` }
          : { name: 'permissions', status: 'ok', detail: `${u.name} can reach ${layout.root}` },
      )
    } catch (err) {
      checks.push({ name: 'os user', status: 'fail', detail: (err as Error).message, hint: (err as { hint?: string }).hint ?? '' })
    }
  } else {
    checks.push({ name: 'os user', status: 'ok', detail: `not root: Postgres runs as uid ${process.getuid?.()}` })
  }

  const live = await kernelLiveness(layout).catch(() => ({ state: 'absent' as const }))
  for (const [key, port] of [['postgres.port', config.postgres.port], ['metrics.port', config.metrics.port]] as const) {
    if (key === 'metrics.port' && !config.metrics.enabled) continue
    const free = await isPortFree(port)
    if (free) checks.push({ name: `port ${key}`, status: 'ok', detail: `${port} is free` })
    else if (live.state === 'running') checks.push({ name: `port ${key}`, status: 'ok', detail: `${port} in use (the running kernel, pid ${live.info.pid})` })
    else checks.push({ name: `port ${key}`, status: 'fail', detail: `${port} is in use by another process`, hint: `magflock config set ${key} ${port + 1}` })
  }

  try {
    const store = await openSecretStore({ layout, environ })
    checks.push({ name: 'secrets store', status: 'ok', detail: `${store.kind === 'file' ? 'encrypted vault file' : 'OS keychain'} (${store.location}): ${store.reason}` })
  } catch (err) {
    checks.push({ name: 'secrets store', status: 'fail', detail: (err as Error).message, hint: (err as { hint?: string }).hint ?? '' })
  }

  try {
    const st = await fsp.stat(layout.root)
    const mode = st.mode & 0o777
    checks.push(
      (mode & 0o066) === 0
        ? { name: 'state dir', status: 'ok', detail: `${layout.root} (${mode.toString(8)})` }
        : { name: 'state dir', status: 'warn', detail: `${layout.root} has mode ${mode.toString(8)}: others can read it`, hint: `chmod 711 ${layout.root}` },
    )
    const fs = statfsSync(layout.root)
    const freeGiB = (fs.bavail * fs.bsize) / 2 ** 30
    checks.push({ name: 'disk', status: freeGiB < 1 ? 'warn' : 'ok', detail: `${freeGiB.toFixed(1)} GiB free under ${layout.root}` })
  } catch {
    checks.push({ name: 'state dir', status: 'ok', detail: `${layout.root} does not exist yet (created by \`magflock up\`)` })
  }
  checks.push(...(await tlsChecks(layout.root, process.cwd(), config)))
  return checks
}

/** First ancestor directory the postgres user could not traverse (no o+x), if any. */
async function untraversable(dir: string): Promise<string | undefined> {
  let d = path.resolve(dir)
  const chain: string[] = []
  for (;;) {
    chain.unshift(d)
    const up = path.dirname(d)
    if (up === d) break
    d = up
  }
  for (const p of chain) {
    const st = await fsp.stat(p).catch(() => undefined)
    if (!st) return undefined
    if ((st.mode & 0o001) === 0 && p !== path.resolve(dir)) return p
  }
  return undefined
}

/** What each missing tool takes away (the embedded build has postgres, initdb and pg_ctl only). */
export function missingFeatures(missing: readonly string[]): string[] {
  const needs: Array<[string, string[]]> = [
    ['WAL archiving and point-in-time recovery', ['pg_receivewal']],
    ['physical backups and replicas', ['pg_basebackup']],
    ['logical backups', ['pg_dump', 'pg_restore']],
    ['backup verification', ['pg_verifybackup']],
    ['rejoining an old primary without a full re-clone', ['pg_rewind']],
    ['`db psql`', ['psql']],
  ]
  return needs.filter(([, tools]) => tools.some((t) => missing.includes(t))).map(([what]) => what)
}
