import type { StatusOutput } from '../api/core.js'

/** Human renderers shared by up/status (plain text; ink views live in src/ui). */
export function renderStatus(s: StatusOutput): string {
  const lines: string[] = []
  lines.push(`kernel   pid ${s.kernel.pid}  env ${s.kernel.env}  up ${s.kernel.uptimeSeconds}s  v${s.kernel.version}`)
  for (const i of s.instances) {
    lines.push(`${i.role.padEnd(10)} ${i.name.padEnd(12)} ${i.state.padEnd(10)} ${i.host}:${i.port}  pid ${i.pid ?? '-'}${i.adopted ? '  (adopted)' : ''}${i.restarts ? `  restarts ${i.restarts}` : ''}${replicationText(i)}`)
  }
  for (const c of s.components) {
    lines.push(`component ${c.name.padEnd(18)} ${c.state.padEnd(10)} ${c.healthy ? 'healthy' : 'UNHEALTHY'}${c.detail ? `  ${c.detail}` : ''}`)
  }
  if (s.primaryUrl) lines.push(`clients  ${s.primaryUrl}`)
  if (s.kernel.metricsUrl) lines.push(`metrics  ${s.kernel.metricsUrl}`)
  return lines.join('\n')
}

/** "  streaming sync, lag 0 B / 0.0 s" for a replica the primary reports on. */
export function replicationText(i: StatusOutput['instances'][number]): string {
  const r = i.replication
  // undefined: not reported (an older kernel); null: the primary does not list it as a sender.
  if (i.role !== 'replica' || r === undefined) return ''
  if (r === null) return '  (not streaming)'
  return `  ${r.state} ${r.syncState}, lag ${formatBytes(r.lagBytes)} / ${r.lagSeconds.toFixed(1)} s`
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 ** 2).toFixed(1)} MiB`
}
