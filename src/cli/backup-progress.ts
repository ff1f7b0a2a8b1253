import type { Progress } from '../backup/tools.js'

/**
 * Rate and ETA for byte-counting progress, and the CLI sink that renders it: an ink bar in a
 * TTY (loaded with a dynamic import so ink costs nothing otherwise), plain lines on stderr
 * when not a TTY, nothing under --json.
 */
export class RateMeter {
  private samples: Array<{ t: number; b: number }> = []
  constructor(private readonly windowMs = 5000) {}

  /** Feed one observation; returns bytes/second over the window and seconds left (if known). */
  observe(now: number, bytesDone: number, bytesTotal?: number): { rate: number | undefined; etaSeconds: number | undefined } {
    this.samples.push({ t: now, b: bytesDone })
    while (this.samples.length > 2 && now - this.samples[0]!.t > this.windowMs) this.samples.shift()
    const first = this.samples[0]!
    const dt = (now - first.t) / 1000
    if (dt <= 0 || bytesDone <= first.b) return { rate: undefined, etaSeconds: undefined }
    const rate = (bytesDone - first.b) / dt
    const eta = bytesTotal !== undefined && bytesTotal >= bytesDone ? (bytesTotal - bytesDone) / rate : undefined
    return { rate, etaSeconds: eta }
  }
}

export function formatRate(bytesPerSecond: number | undefined): string {
  if (bytesPerSecond === undefined) return ''
  return `${(bytesPerSecond / 1048576).toFixed(1)} MiB/s`
}

export function formatEta(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return ''
  const s = Math.max(0, Math.round(seconds))
  return s >= 60 ? `ETA ${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `ETA ${s}s`
}

/** "copied 10 of 50 MiB · 80.0 MiB/s · ETA 1s" */
export function describeProgress(p: Progress, meter: RateMeter, now = Date.now()): string {
  if (p.bytesDone === undefined) return p.message
  const { rate, etaSeconds } = meter.observe(now, p.bytesDone, p.bytesTotal)
  return [p.message, formatRate(rate), formatEta(etaSeconds)].filter(Boolean).join(' · ')
}

export interface ProgressSink {
  onProgress(p: Progress): void
  done(summary: string): Promise<void>
  fail(message: string): Promise<void>
}

export async function progressSink(o: { json: boolean; title: string; line: (msg: string) => void; tty?: boolean }): Promise<ProgressSink> {
  const meter = new RateMeter()
  if (o.json) return { onProgress: () => undefined, done: async () => undefined, fail: async () => undefined }
  const tty = o.tty ?? Boolean(process.stderr.isTTY)
  if (tty) {
    const { startProgressBar } = await import('../ui/progress-bar.js')
    const bar = await startProgressBar({ title: o.title })
    return {
      onProgress: (p) => bar.update({ ...p, message: describeProgress(p, meter) }),
      done: (s) => bar.done(s),
      fail: (m) => bar.fail(m),
    }
  }
  let lastLine = 0
  return {
    onProgress: (p) => {
      const now = Date.now()
      const text = describeProgress(p, meter, now)
      if (p.phase !== 'done' && now - lastLine < 1000) return
      lastLine = now
      const pct = p.fraction !== undefined ? ` ${Math.round(p.fraction * 100)}%` : ''
      o.line(`${o.title}: [${p.phase}]${pct} ${text}`)
    },
    done: async () => undefined,
    fail: async () => undefined,
  }
}
