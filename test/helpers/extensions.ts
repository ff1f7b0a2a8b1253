import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { extLogs, extList, type ExtInfo } from '../../src/api/extensions.js'
import type { KernelClient } from '../../src/client/index.js'
import { ROOT } from './cli.js'
import { waitFor } from './wait.js'

/** The probe extension (test/fixtures/extensions/probe) packaged under `name` in `dir`. */
export function probeExtension(dir: string, name: string, args: string[], manifest: Record<string, unknown> = {}): string {
  const d = path.join(dir, `ext-${name}`)
  mkdirSync(d, { recursive: true })
  copyFileSync(path.join(ROOT, 'test/fixtures/extensions/probe/probe.mjs'), path.join(d, 'probe.mjs'))
  writeFileSync(path.join(d, 'magflock-extension.json'), JSON.stringify({ name, version: '1.0.0', entry: ['node', './probe.mjs', ...args], capabilities: [], ...manifest }))
  return d
}

export type ProbeLine = { probe: string; [k: string]: unknown }

/** The JSON lines the extension printed (its log, through the admin API). */
export async function probeLines(admin: KernelClient, name: string): Promise<ProbeLine[]> {
  const r = await admin.call(extLogs, { name, lines: 10_000 })
  return r.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as ProbeLine)
}

export async function waitForProbe(admin: KernelClient, name: string, probe: string, timeoutMs = 60_000): Promise<ProbeLine[]> {
  return waitFor(`${name} to print ${probe}`, async () => {
    const lines = await probeLines(admin, name)
    return lines.some((l) => l.probe === probe) ? lines : undefined
  }, timeoutMs, 200)
}

export async function extInfo(admin: KernelClient, name: string): Promise<ExtInfo> {
  const e = (await admin.call(extList, {})).extensions.find((x) => x.name === name)
  if (!e) throw new Error(`extension ${name} not listed`)
  return e
}

export interface AuditRecord {
  seq: number
  actor: string
  role?: string
  action: string
  target?: string
  result: string
  details?: Record<string, unknown>
}

export function auditRecords(file: string): AuditRecord[] {
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditRecord)
}
