import { promises as fsp } from 'node:fs'
import { lsnToBigInt } from './manifest.js'

/**
 * WAL segment arithmetic and archive inspection. Segments are 16 MiB (the initdb default,
 * which MagFlock never changes); a name is TLI | log | seg, 8 hex digits each.
 */
export const WAL_SEGMENT_BYTES = 16n * 1024n * 1024n
const SEGS_PER_LOG = 0x1_0000_0000n / WAL_SEGMENT_BYTES

export function segmentNo(lsn: string): bigint {
  return lsnToBigInt(lsn) / WAL_SEGMENT_BYTES
}

export function segmentName(tli: number, segNo: bigint): string {
  const h = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0')
  return h(tli) + h(segNo / SEGS_PER_LOG) + h(segNo % SEGS_PER_LOG)
}

export function parseSegmentName(name: string): { tli: number; segNo: bigint; partial: boolean } | undefined {
  const m = name.match(/^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial)?$/)
  if (!m) return undefined
  return { tli: parseInt(m[1]!, 16), segNo: BigInt('0x' + m[2]) * SEGS_PER_LOG + BigInt('0x' + m[3]), partial: Boolean(m[4]) }
}

export interface ArchivedSegment {
  name: string
  tli: number
  segNo: bigint
  partial: boolean
}

export async function listArchive(walDir: string): Promise<ArchivedSegment[]> {
  let names: string[] = []
  try {
    names = await fsp.readdir(walDir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const out: ArchivedSegment[] = []
  for (const name of names) {
    const p = parseSegmentName(name)
    if (p) out.push({ name, ...p })
  }
  return out.sort((a, b) => (a.segNo < b.segNo ? -1 : a.segNo > b.segNo ? 1 : a.tli - b.tli))
}

/**
 * The first segment recovery would need but cannot find, replaying timeline `tli` from the
 * segment after `fromLsn` (the backup carries WAL up to its stop LSN) up to `toLsn`, or up to
 * the newest archived segment when no LSN target is given. undefined = no gap.
 */
export function firstMissingSegment(archive: ArchivedSegment[], tli: number, fromLsn: string, toLsn?: string): string | undefined {
  const have = new Set(archive.filter((s) => s.tli === tli).map((s) => s.segNo))
  const start = segmentNo(fromLsn) + 1n
  let end: bigint
  if (toLsn) end = segmentNo(toLsn)
  else {
    const mine = archive.filter((s) => s.tli === tli)
    end = mine.length ? mine[mine.length - 1]!.segNo : start - 1n
  }
  for (let s = start; s <= end; s++) if (!have.has(s)) return segmentName(tli, s)
  return undefined
}

/** Segments older than `keepFromSegNo` on any timeline (history files are always kept). */
export function segmentsBefore(archive: ArchivedSegment[], keepFromSegNo: bigint): ArchivedSegment[] {
  return archive.filter((s) => s.segNo < keepFromSegNo)
}

/**
 * A restore_command that reads the archive. pg_receivewal keeps the segment it is writing
 * as `<name>.partial` (zero-padded to full size), so when the full segment is not there yet
 * the partial one is served: recovery sees the end of valid WAL in it and stops cleanly.
 */
export function restoreCommand(walDir: string): string {
  const d = walDir.replace(/'/g, "'\\''")
  return `if [ -f '${d}/%f' ]; then cp '${d}/%f' '%p'; elif [ -f '${d}/%f.partial' ]; then cp '${d}/%f.partial' '%p'; else exit 1; fi`
}
