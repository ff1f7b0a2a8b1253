import { createRequire } from 'node:module'

/**
 * The optional native writer (native/socket-writes.c, built into dist/native/ by `npm run
 * build` where a C compiler is found): one call sends the bytes of many sockets, each with a
 * non-blocking send(2). Without it the hub writes each socket through Node (same bytes, same
 * order; about 1 µs more per socket write, see docs/realtime.md).
 */
export interface NativeWrites {
  /** out[i]: bytes send(2) took for bufs[i] on fds[i] (0..length), or -errno. */
  writeMany(fds: Int32Array, bufs: Uint8Array[], count: number, out: Int32Array): void
  /**
   * sched_yield(2): other threads runnable on this core run first. The hub calls it between
   * flush slices that leave writes pending (realtime.yieldCpu; see docs/realtime.md).
   */
  yieldCpu(): void
}

/** Relative to this module, in src/realtime/ and dist/<dir>/ alike: the package's dist/native/. */
const ADDON = '../../dist/native/socket-writes.node'

let loaded: { writes: NativeWrites | undefined; error: string | undefined } | undefined

/** The native writer, or undefined (with the reason) when it is not built or does not load. */
export function loadNativeWrites(): { writes: NativeWrites | undefined; error: string | undefined } {
  if (loaded) return loaded
  try {
    const mod = createRequire(import.meta.url)(ADDON) as Partial<NativeWrites>
    const missing = (['writeMany', 'yieldCpu'] as const).find((f) => typeof mod[f] !== 'function')
    loaded = missing ? { writes: undefined, error: `dist/native/socket-writes.node has no ${missing} (npm run build rebuilds it)` } : { writes: mod as NativeWrites, error: undefined }
  } catch (err) {
    loaded = { writes: undefined, error: (err as Error).message.split('\n')[0] }
  }
  return loaded
}

/** The writer the hub gets for realtime.nativeWrites, and a line for `realtime status` saying which. */
export function chooseWriter(wanted: boolean, load = loadNativeWrites): { writes: NativeWrites | undefined; native: boolean; detail: string } {
  if (!wanted) return { writes: undefined, native: false, detail: 'Node socket writes (realtime.nativeWrites is false)' }
  const { writes, error } = load()
  if (writes) return { writes, native: true, detail: 'native socket writer (dist/native/socket-writes.node)' }
  return { writes: undefined, native: false, detail: `Node socket writes: the native writer did not load (${error ?? 'unknown'}); npm run build builds it where a C compiler is found` }
}

/**
 * What the hub calls between flush slices that leave writes pending, for realtime.yieldCpu:
 * the native part's sched_yield, or nothing (Node has no way to yield the CPU; the flush then
 * runs until the scheduler preempts it, as before).
 */
export function chooseYield(wanted: boolean, load = loadNativeWrites): (() => void) | undefined {
  return wanted ? load().writes?.yieldCpu : undefined
}
