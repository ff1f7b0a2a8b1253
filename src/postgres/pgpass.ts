import { writeFileAtomic } from '../platform/fs.js'

/**
 * `<state>/pgpass`: a libpq password file (mode 0600, owned by whoever runs the kernel) for the
 * flock's superuser on every instance's host and any port, so the psql line `up` prints
 * (`PGPASSFILE=<state>/pgpass psql "<multi-host URL>"`) connects without a prompt and without
 * the password ever appearing in output, argv or shell history. The kernel rewrites it at every
 * boot and when the superuser password is rotated.
 */
export async function writeSuperuserPgpass(file: string, entry: { hosts: string[]; user: string; password: string }): Promise<void> {
  const lines = [...new Set(entry.hosts)].map((h) => [h, '*', '*', entry.user, entry.password].map(escapeField).join(':'))
  await writeFileAtomic(file, lines.join('\n') + '\n', { mode: 0o600 })
}

/** libpq: ':' and '\' inside a field are escaped with a backslash. */
export function escapeField(s: string): string {
  return s.replace(/[\\:]/g, (c) => `\\${c}`)
}
