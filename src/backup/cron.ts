import { BACKUP_CRON_INVALID } from './errors.js'

/**
 * A minimal 5-field cron (minute hour day-of-month month day-of-week), evaluated in UTC.
 * Supports `*`, numbers, ranges `a-b`, steps `* /n` and `a-b/n`, and lists. Day-of-week 0 and 7
 * are Sunday. As in Vixie cron, when both day fields are restricted a day matching EITHER runs.
 */
export interface CronSpec {
  expr: string
  minutes: Set<number>
  hours: Set<number>
  doms: Set<number>
  months: Set<number>
  dows: Set<number>
  domStar: boolean
  dowStar: boolean
}

const FIELDS: Array<{ name: string; min: number; max: number }> = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day-of-week', min: 0, max: 7 },
]

function parseField(expr: string, text: string, f: { name: string; min: number; max: number }): Set<number> {
  const out = new Set<number>()
  for (const part of text.split(',')) {
    const m = part.match(/^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/)
    if (!m) throw BACKUP_CRON_INVALID({ expr, reason: `${f.name} "${part}" is not understood` })
    const lo = m[1] === '*' ? f.min : Number(m[2])
    const hi = m[1] === '*' ? f.max : m[3] !== undefined ? Number(m[3]) : m[4] !== undefined ? f.max : lo
    const step = m[4] !== undefined ? Number(m[4]) : 1
    if (lo < f.min || hi > f.max || lo > hi || step < 1) throw BACKUP_CRON_INVALID({ expr, reason: `${f.name} "${part}" is outside ${f.min}-${f.max}` })
    for (let v = lo; v <= hi; v += step) out.add(v)
  }
  return out
}

export function parseCron(expr: string): CronSpec {
  const parts = expr.trim().split(/\s+/)
  if (parts.length !== 5) throw BACKUP_CRON_INVALID({ expr, reason: `expected 5 fields, got ${parts.length}` })
  const [mi, h, dom, mon, dow] = parts.map((p, i) => parseField(expr, p, FIELDS[i]!)) as [Set<number>, Set<number>, Set<number>, Set<number>, Set<number>]
  if (dow.has(7)) dow.add(0)
  return { expr, minutes: mi, hours: h, doms: dom, months: mon, dows: dow, domStar: parts[2] === '*', dowStar: parts[4] === '*' }
}

export function cronMatches(spec: CronSpec, d: Date): boolean {
  if (!spec.minutes.has(d.getUTCMinutes()) || !spec.hours.has(d.getUTCHours()) || !spec.months.has(d.getUTCMonth() + 1)) return false
  const domOk = spec.doms.has(d.getUTCDate())
  const dowOk = spec.dows.has(d.getUTCDay())
  if (spec.domStar && spec.dowStar) return true
  if (spec.domStar) return dowOk
  if (spec.dowStar) return domOk
  return domOk || dowOk
}

/** The first matching minute strictly after `after` (UTC); undefined if none within 5 years. */
export function nextRun(spec: CronSpec, after: Date): Date | undefined {
  const d = new Date(after.getTime())
  d.setUTCSeconds(0, 0)
  d.setUTCMinutes(d.getUTCMinutes() + 1)
  const limit = after.getTime() + 5 * 366 * 86_400_000
  while (d.getTime() < limit) {
    if (!spec.months.has(d.getUTCMonth() + 1)) {
      d.setUTCMonth(d.getUTCMonth() + 1, 1)
      d.setUTCHours(0, 0)
      continue
    }
    if (!cronMatches({ ...spec, minutes: new Set(Array.from({ length: 60 }, (_, i) => i)), hours: new Set(Array.from({ length: 24 }, (_, i) => i)) }, d)) {
      d.setUTCDate(d.getUTCDate() + 1)
      d.setUTCHours(0, 0)
      continue
    }
    if (!spec.hours.has(d.getUTCHours())) {
      d.setUTCHours(d.getUTCHours() + 1, 0)
      continue
    }
    if (cronMatches(spec, d)) return d
    d.setUTCMinutes(d.getUTCMinutes() + 1)
  }
  return undefined
}
