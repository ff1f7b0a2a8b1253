/**
 * Postgres LSNs ("16/B374D848") as comparable numbers. An LSN is a 64-bit WAL position;
 * bigint keeps it exact (a JS number loses precision above 2^53).
 */
export function parseLsn(lsn: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn.trim())
  if (!m) throw new Error(`not an LSN: ${lsn}`)
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`)
}

export function formatLsn(v: bigint): string {
  return `${(v >> 32n).toString(16).toUpperCase()}/${(v & 0xffffffffn).toString(16).toUpperCase()}`
}

/** -1, 0, 1; an unknown LSN (undefined/null) sorts below every known one. */
export function compareLsn(a: string | null | undefined, b: string | null | undefined): number {
  if (!a && !b) return 0
  if (!a) return -1
  if (!b) return 1
  const x = parseLsn(a)
  const y = parseLsn(b)
  return x < y ? -1 : x > y ? 1 : 0
}

/** Bytes between two LSNs (never negative); 0 when either is unknown. */
export function lsnDiff(ahead: string | null | undefined, behind: string | null | undefined): number {
  if (!ahead || !behind) return 0
  const d = parseLsn(ahead) - parseLsn(behind)
  return d > 0n ? Number(d) : 0
}
