/**
 * What realtime creates on the primary, by name. Kept apart from stream.ts (which loads the
 * logical replication client) so that a kernel with realtime disabled can look for a leftover
 * slot without loading any of it (src/daemon/components/realtime-component.ts).
 */
export const REALTIME_SLOT = 'magflock_realtime'
export const REALTIME_PUBLICATION = 'magflock_realtime'
