import type { ProgressEvent } from '../api/route.js'

/**
 * An ink progress bar for long operations (migrate, backup, restore), drawn on stderr.
 *
 * Importing ink costs ~400 ms, so this module imports it only inside startProgressBar, and
 * commands load this module itself with `await import()` only when stderr is a TTY and
 * --json is off. Everything else (the text of the bar) is pure and unit-tested.
 *
 *   const { startProgressBar } = await import('../../ui/progress-bar.js')
 *   const bar = await startProgressBar({ title: 'Migrating app' })
 *   await client.call(route, input, { onProgress: (e) => bar.update(e) })
 *   bar.done('applied 3 migrations')        // or bar.fail('…') in a catch
 */
export type ProgressUpdate = Omit<ProgressEvent, 'type'>

export interface ProgressBar {
  update(ev: ProgressUpdate): void
  /** Final frame with the summary; resolves when ink has flushed. */
  done(summary?: string): Promise<void>
  fail(message?: string): Promise<void>
}

export function barText(fraction: number | undefined, width = 30): string {
  if (fraction === undefined || Number.isNaN(fraction)) return '░'.repeat(width)
  const f = Math.min(1, Math.max(0, fraction))
  const full = Math.round(f * width)
  return '█'.repeat(full) + '░'.repeat(width - full)
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`
}

/** "3/10", "1.5 MiB/4.0 MiB" or "" — what the bar shows next to itself. */
export function countsText(ev: ProgressUpdate): string {
  if (ev.bytesTotal !== undefined) return `${formatBytes(ev.bytesDone ?? 0)}/${formatBytes(ev.bytesTotal)}`
  if (ev.total !== undefined && ev.total > 0) return `${ev.current ?? 0}/${ev.total}`
  return ''
}

export function fractionOf(ev: ProgressUpdate): number | undefined {
  if (ev.fraction !== undefined) return ev.fraction
  if (ev.bytesTotal) return (ev.bytesDone ?? 0) / ev.bytesTotal
  if (ev.total) return (ev.current ?? 0) / ev.total
  return undefined
}

/** One frame as plain text (what the ink view renders), for tests and non-ink fallbacks. */
export function frameText(title: string, ev: ProgressUpdate | undefined, width = 30): string {
  if (!ev) return `${title}  ${barText(undefined, width)}`
  const pct = fractionOf(ev)
  const counts = countsText(ev)
  const pctText = pct === undefined ? '' : ` ${String(Math.round(pct * 100)).padStart(3)}%`
  return `${title}  ${barText(pct, width)}${pctText}${counts ? `  ${counts}` : ''}  ${ev.message}`
}

export async function startProgressBar(opts: { title: string; stream?: NodeJS.WriteStream; width?: number }): Promise<ProgressBar> {
  const [{ render, Box, Text }, React] = await Promise.all([import('ink'), import('react')])
  const stream = opts.stream ?? process.stderr
  const width = opts.width ?? 30
  const h = React.createElement

  type State = { ev: ProgressUpdate | undefined; final?: { ok: boolean; text: string } }
  const View = ({ s }: { s: State }) => {
    if (s.final) return h(Text, { color: s.final.ok ? 'green' : 'red' }, `${s.final.ok ? '✔' : '✖'} ${opts.title}: ${s.final.text}`)
    const ev = s.ev
    const pct = ev ? fractionOf(ev) : undefined
    return h(
      Box,
      { flexDirection: 'column' },
      h(
        Box,
        null,
        h(Text, { bold: true }, opts.title + '  '),
        h(Text, { color: 'cyan' }, barText(pct, width)),
        h(Text, null, pct === undefined ? '' : ` ${String(Math.round(pct * 100)).padStart(3)}%`),
        h(Text, { dimColor: true }, ev && countsText(ev) ? `  ${countsText(ev)}` : ''),
      ),
      h(Text, { dimColor: true }, ev?.message ?? 'starting…'),
    )
  }

  let state: State = { ev: undefined }
  const app = render(h(View, { s: state }), { stdout: stream, patchConsole: false, exitOnCtrlC: false })
  const finish = async (final: { ok: boolean; text: string }) => {
    state = { ...state, final }
    app.rerender(h(View, { s: state }))
    app.unmount()
    await app.waitUntilExit().catch(() => {})
  }
  return {
    update(ev) {
      state = { ev }
      app.rerender(h(View, { s: state }))
    },
    done: (summary) => finish({ ok: true, text: summary ?? 'done' }),
    fail: (message) => finish({ ok: false, text: message ?? 'failed' }),
  }
}
