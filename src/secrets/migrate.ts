import { promises as fsp } from 'node:fs'
import path from 'node:path'
import type { SecretStore } from './secret-store.js'
import type { StateLayout } from '../platform/paths.js'
import { fsyncDir } from '../platform/fs.js'
import { SUPERUSER_SECRET } from './names.js'
import { redactor } from './redact.js'

export type MigrationOutcome = 'none' | 'migrated' | 'already-migrated' | 'conflict'

export function legacySuperuserPasswordFile(layout: StateLayout): string {
  return path.join(layout.root, 'superuser.password')
}

/**
 * Moves the superuser password an older foundation kept in `<state>/superuser.password`
 * (0600, plain text) into the vault as SUPERUSER_SECRET. Idempotent and loss-free:
 *  - no file → 'none';
 *  - vault has no entry → write it, read it back from the store, then delete the file → 'migrated';
 *  - vault already has the same value (a crash after the write) → delete the file → 'already-migrated';
 *  - vault has a different value → touch nothing, report 'conflict' (an operator decides).
 */
export async function migrateLegacySuperuserPassword(layout: StateLayout, store: SecretStore): Promise<MigrationOutcome> {
  const file = legacySuperuserPasswordFile(layout)
  let text: string
  try {
    text = await fsp.readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'none'
    throw err
  }
  // The foundation wrote the password followed by at most one newline.
  const password = text.replace(/\r?\n$/, '')
  redactor.add(password)
  if (password === '') return 'none'
  const existing = await store.get(SUPERUSER_SECRET)
  if (existing !== undefined && existing !== password) return 'conflict'
  let outcome: MigrationOutcome = 'already-migrated'
  if (existing === undefined) {
    await store.set(SUPERUSER_SECRET, password)
    // Only a value read back from the store proves the write is durable and readable.
    if ((await store.get(SUPERUSER_SECRET)) !== password) throw new Error('vault did not return the migrated superuser password')
    outcome = 'migrated'
  }
  await fsp.rm(file)
  await fsyncDir(layout.root)
  return outcome
}
