import { execa, type Result } from 'execa'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const NODE = path.join(ROOT, 'node_modules/.bin/node')
export const RUN_JS = path.join(ROOT, 'bin/run.js')

export interface CliResult<T = unknown> {
  exitCode: number
  stdout: string
  stderr: string
  /** Parsed --json envelope when stdout held one. */
  json: { ok: true; data: T } | { ok: false; error: { code: string; class: string; message: string; hint?: string; details?: Record<string, unknown> } } | undefined
}

/** Runs the BUILT CLI as a subprocess, exactly as a user would (npm run build first). */
export async function cli<T = unknown>(args: string[], opts: { cwd: string; env?: Record<string, string>; input?: string; timeoutMs?: number }): Promise<CliResult<T>> {
  const r: Result = await execa(NODE, [RUN_JS, ...args], {
    cwd: opts.cwd,
    env: { ...opts.env, NO_COLOR: '1' },
    reject: false,
    timeout: opts.timeoutMs ?? 180_000,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' }),
  })
  let json: CliResult<T>['json']
  const out = String(r.stdout ?? '')
  if (out.trim().startsWith('{')) {
    try {
      json = JSON.parse(out)
    } catch {
      json = undefined
    }
  }
  return { exitCode: r.exitCode ?? -1, stdout: out, stderr: String(r.stderr ?? ''), json }
}
