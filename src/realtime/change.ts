import type { Relation, Row } from './pgoutput.js'

/** One decoded row change, with its transaction's commit time (ms since the Unix epoch). */
export interface Change {
  type: 'INSERT' | 'UPDATE' | 'DELETE'
  relation: Relation
  record: Row | null
  oldRecord: Row | null
  commitTime: number
  /** The transaction's id (32 bits, as pgoutput's BEGIN gives it); row checks wait for it to be visible. */
  xid?: number
}
