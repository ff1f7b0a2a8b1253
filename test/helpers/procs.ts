import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'

/** One process as /proc shows it. */
export interface Proc {
  pid: number
  ppid: number
  argv: string[]
  tool: string
}

export function readProc(pid: number): Proc | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
    return { pid, ppid, argv, tool: path.basename(argv[0] ?? '').replace(/:$/, '') }
  } catch {
    return undefined
  }
}

export function allProcs(): Proc[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map((e) => readProc(Number(e)))
    .filter((p): p is Proc => p !== undefined && p.argv.length > 0)
}

/** Every live descendant of `root` (children, their children, …). */
export function descendants(root: number): Proc[] {
  const procs = allProcs()
  const out: Proc[] = []
  const seen = new Set([root])
  let grew = true
  while (grew) {
    grew = false
    for (const p of procs) {
      if (!seen.has(p.pid) && seen.has(p.ppid)) {
        seen.add(p.pid)
        out.push(p)
        grew = true
      }
    }
  }
  return out
}

/** The environment of `pid` (undefined when it is gone). */
export function environOf(pid: number): Record<string, string> | undefined {
  try {
    const env: Record<string, string> = {}
    for (const kv of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
      const i = kv.indexOf('=')
      if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1)
    }
    return env
  } catch {
    return undefined
  }
}

/** Live processes of `tool` with an argument under `dir`. */
export function toolsUnder(tool: string, dir: string): Proc[] {
  return allProcs().filter((p) => p.tool === tool && p.argv.some((a) => a.startsWith(dir)))
}
