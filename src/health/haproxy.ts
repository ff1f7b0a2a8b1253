import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Renders templates/haproxy.cfg for a flock: one `server` line per instance, each checked on
 * its health port (instance port + health.portOffset). Patroni's own template checks
 * `OPTIONS /primary` (and `/replica`) on port 8008 in the same way.
 */
export interface HaproxyInput {
  servers: Array<{ name: string; host: string; port: number }>
  portOffset: number
  primaryBind: string
  replicaBind: string
  statsBind: string
  /** HAProxy's check timing; Patroni's template uses 3s / fall 3 / rise 2. */
  checkInterval?: string
  fall?: number
  rise?: number
}

export function haproxyTemplatePath(): string {
  // dist/health/haproxy.js and src/health/haproxy.ts are both two levels below the package root.
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../templates/haproxy.cfg')
}

export function renderHaproxyCfg(i: HaproxyInput, template = readFileSync(haproxyTemplatePath(), 'utf8')): string {
  const servers = i.servers
    .map((s) => `    server ${s.name.replace(/[^A-Za-z0-9_.-]/g, '_')} ${s.host}:${s.port} maxconn 100 check port ${s.port + i.portOffset}`)
    .join('\n')
  const fields: Record<string, string> = {
    servers,
    primaryBind: i.primaryBind,
    replicaBind: i.replicaBind,
    statsBind: i.statsBind,
    checkInterval: i.checkInterval ?? '3s',
    fall: String(i.fall ?? 3),
    rise: String(i.rise ?? 2),
  }
  return template.replace(/\{\{(\w+)\}\}/g, (m, k: string) => fields[k] ?? m)
}
