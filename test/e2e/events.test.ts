import { spawn } from 'node:child_process'
import { appendFileSync, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFlock, type Flock } from '../helpers/flock.js'
import { NODE, RUN_JS } from '../helpers/cli.js'
import { waitFor } from '../helpers/wait.js'

/**
 * `magflock events` (the built CLI) against a real kernel: NDJSON with --json, human lines,
 * resume from a cursor across a kernel restart with no loss, a corrupt journal tail, errors
 * and exit codes, and --follow.
 */
interface Line {
  seq?: number
  type: string
  data?: Record<string, unknown>
  ok?: boolean
  error?: { code: string }
}

let f: Flock

/** Reloads the config (one config.reloaded event each time) until `done()`: a follower may still be connecting. */
function reloadUntil(what: string, done: () => boolean, ms = 60_000): Promise<unknown> {
  return waitFor(
    what,
    async () => {
      if (done()) return true
      await f.run(['config', 'reload', '--json'])
      return done()
    },
    ms,
    200,
  )
}
const ndjson = (s: string): Line[] =>
  s
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Line)

beforeAll(async () => {
  f = await createFlock()
  const up = await f.run(['up', '--json'])
  expect(up.exitCode, up.stderr).toBe(0)
}, 180_000)
afterAll(async () => {
  await f?.destroy()
})

describe('magflock events', () => {
  it('--json prints the journal as NDJSON, in seq order from 1', async () => {
    const r = await f.run(['events', '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    const lines = ndjson(r.stdout)
    expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i + 1))
    expect(lines.map((l) => l.type)).toContain('kernel.started')
    const human = await f.run(['events', '--type', 'kernel.*'])
    expect(human.exitCode).toBe(0)
    expect(human.stdout).toMatch(/^\s+\d+ {2}\S+ {2}kernel\.started {2}pid=\d+/m)
    expect(human.stdout).not.toContain('component.state')
  })

  it('resumes from a cursor across a kernel restart with no event lost', async () => {
    const before = ndjson((await f.run(['events', '--json'])).stdout)
    const cursor = before.at(-1)!.seq!
    expect((await f.run(['config', 'reload', '--json'])).exitCode).toBe(0)
    const stop = await f.run(['kernel', 'stop', '--json'])
    expect(stop.exitCode, stop.stderr).toBe(0)
    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stderr).toBe(0)
    const after = ndjson((await f.run(['events', '--after', String(cursor), '--json'])).stdout)
    expect(after[0]!.seq).toBe(cursor + 1)
    expect(after.map((l) => l.seq)).toEqual(after.map((_, i) => cursor + 1 + i))
    const types = after.map((l) => l.type)
    expect(types.indexOf('config.reloaded')).toBeLessThan(types.indexOf('kernel.stopping'))
    expect(types.indexOf('kernel.stopping')).toBeLessThan(types.lastIndexOf('kernel.started'))
  })

  it('a corrupt journal tail is cut at the kernel start, with a log line, and numbering goes on', async () => {
    const last = ndjson((await f.run(['events', '--json'])).stdout).at(-1)!.seq!
    expect((await f.run(['kernel', 'stop', '--json'])).exitCode).toBe(0)
    const dir = path.join(f.stateDir, 'events')
    const seg = readdirSync(dir).sort().at(-1)!
    appendFileSync(path.join(dir, seg), '{"seq":' + (last + 1) + ',"id":"torn","type":"kernel.st')
    const up = await f.run(['up', '--json'])
    expect(up.exitCode, up.stderr).toBe(0)
    expect(readFileSync(f.layout.kernelLog, 'utf8')).toContain('event journal: corrupt tail truncated')
    const after = ndjson((await f.run(['events', '--after', String(last), '--json'])).stdout)
    expect(after[0]!.seq).toBe(last + 1)
    expect(after.some((l) => l.data?.id === 'torn')).toBe(false)
  })

  it('bad flags and cursors: a one-line JSON error and the documented exit code', async () => {
    const bad = await f.run(['events', '--type', 'Not A Type', '--json'])
    expect(bad.exitCode).toBe(2)
    expect(ndjson(bad.stdout)).toEqual([expect.objectContaining({ ok: false, error: expect.objectContaining({ code: 'E_INVALID_REQUEST' }) })])
    const ahead = await f.run(['events', '--after', '999999999', '--json'])
    expect(ahead.exitCode).toBe(2)
    expect(ndjson(ahead.stdout)[0]!.error!.code).toBe('E_EVENT_CURSOR_AHEAD')
    const human = await f.run(['events', '--after', '999999999'])
    expect(human.stderr).toContain('Error [E_EVENT_CURSOR_AHEAD]')
  })

  it('--follow prints new events as they happen and exits 0 on SIGINT', async () => {
    const child = execa(NODE, [RUN_JS, 'events', '--follow', '--type', 'config.*', '--json'], { cwd: f.projectDir, env: { ...f.env, NO_COLOR: '1' }, reject: false })
    let out = ''
    child.stdout?.on('data', (c: Buffer) => (out += c.toString()))
    // Follow without --after prints new events only: reload until one arrives.
    await reloadUntil('the follower sees a reload', () => out.includes('config.reloaded'))
    child.kill('SIGINT')
    const res = await child
    expect(res.exitCode).toBe(0)
    const lines = ndjson(out)
    expect(lines.length).toBeGreaterThan(0)
    expect(lines.every((l) => l.type === 'config.reloaded')).toBe(true)
  })

  it('--follow ends (exit 0) when its reader stops reading (`events --follow | head -1`)', async () => {
    const child = spawn(NODE, [RUN_JS, 'events', '--follow', '--type', 'config.*', '--json'], { cwd: f.projectDir, env: { ...process.env, ...f.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] })
    const exited = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
    let out = ''
    child.stdout.on('data', (c: Buffer) => (out += c.toString()))
    try {
      await reloadUntil('the follower sees a reload', () => out.includes('config.reloaded'))
      // The reader goes away; the next event's line fails with EPIPE and the follower ends.
      child.stdout.destroy()
      let code: number | null | undefined
      void exited.then((c) => (code = c))
      await reloadUntil('the follower to end', () => code !== undefined, 30_000)
      expect(code).toBe(0)
    } finally {
      child.kill('SIGKILL')
    }
  })
})
