/**
 * Instance names and roles of a flock: rules shared by the instance registry (src/daemon/instances.ts),
 * replication and the postgres component.
 */
export type InstanceRole = 'primary' | 'replica' | 'fenced' | 'standalone'

export type FlockRole = Exclude<InstanceRole, 'standalone'>

/**
 * Instance names never repeat a role word: roles move (switchover, failover, rejoin), names
 * stay, so "primary pg2 / replica pg1" reads true after any of them. The first instance is
 * pg1 and new replicas take the next free pgN. State dirs from before this scheme called the
 * first instance `primary`; they keep that name (topology.json and instances/primary are
 * adopted as they are).
 */
export const FIRST_INSTANCE = 'pg1'
export const LEGACY_FIRST_INSTANCE = 'primary'
export const ROLE_WORDS: readonly string[] = ['primary', 'replica', 'fenced', 'standalone']

/** The flock's original instance, whose port is `postgres.port` (the others' come from topology). */
export function isFirstInstance(name: string): boolean {
  return name === FIRST_INSTANCE || name === LEGACY_FIRST_INSTANCE
}

/**
 * Names a replica may not take: role words, and pg1, which is reserved for the first instance
 * even in an older flock whose first instance is `primary` (its port follows postgres.port).
 */
export function reservedInstanceName(name: string): boolean {
  return ROLE_WORDS.includes(name) || name === FIRST_INSTANCE
}

/** pg2, pg3, …: the lowest that is free (pg1 is the first instance's). */
export function nextInstanceName(taken: Iterable<string>): string {
  const used = new Set(taken)
  for (let i = 2; ; i++) if (!used.has(`pg${i}`)) return `pg${i}`
}
