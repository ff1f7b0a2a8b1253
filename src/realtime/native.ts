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
}

/** Relative to this module, in src/realtime/ and dist/<dir>/ alike: the package's dist/native/. */
const ADDON = '../../dist/native/socket-writes.node'

let loaded: { writes: NativeWrites | undefined; error: string | undefined } | undefined

/** The native writer, or undefined (with the reason) when it is not built or does not load. */
export function loadNativeWrites(): { writes: NativeWrites | undefined; error: string | undefined } {
  if (loaded) return loaded
  try {
    const mod = createRequire(import.meta.url)(ADDON) as Partial<NativeWrites>
    loaded = typeof mod.writeMany === 'function' ? { writes: mod as NativeWrites, error: undefined } : { writes: undefined, error: 'dist/native/socket-writes.node has no writeMany' }
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
