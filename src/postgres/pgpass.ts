import { writeFileAtomicIfChanged } from '../platform/fs.js'

/**
 * Client files the kernel keeps in the state dir so that what `up` prints connects when pasted,
 * without a password prompt and without the password ever appearing in output, argv or shell
 * history, and still reaches the primary after a switchover or failover:
 *
 *   <state>/pgpass           libpq password file (0600, owned by whoever runs the kernel): the
 *                            superuser on the flock's hosts, any port and database. Rewritten at
 *                            every boot and when the superuser password is rotated.
 *   <state>/pg_service.conf  libpq service file (0600) with one service, `magflock`: every flock
 *                            member, the primary first, target_session_attrs=read-write and the
 *                            passfile above. Rewritten whenever the topology changes.
 *
 * `PGSERVICEFILE=<state>/pg_service.conf psql service=magflock` is the line `up` prints.
 */
export async function writeSuperuserPgpass(file: string, entry: { hosts: string[]; user: string; password: string }): Promise<void> {
  const lines = [...new Set(entry.hosts)].map((h) => [h, '*', '*', entry.user, entry.password].map(escapeField).join(':'))
  await writeFileAtomicIfChanged(file, lines.join('\n') + '\n', { mode: 0o600 })
}

/** libpq: ':' and '\' inside a field are escaped with a backslash. */
export function escapeField(s: string): string {
  return s.replace(/[\\:]/g, (c) => `\\${c}`)
}

export const SERVICE_NAME = 'magflock'

export async function writeServiceFile(
  file: string,
  s: { members: Array<{ host: string; port: number }>; user: string; database: string; passfile: string },
): Promise<void> {
  const text = [
    '# Written by the MagFlock kernel at every topology change; edits are overwritten.',
    `[${SERVICE_NAME}]`,
    `host=${s.members.map((m) => m.host).join(',')}`,
    `port=${s.members.map((m) => m.port).join(',')}`,
    `user=${s.user}`,
    `dbname=${s.database}`,
    'target_session_attrs=read-write',
    'connect_timeout=2',
    `passfile=${s.passfile}`,
    '',
  ].join('\n')
  await writeFileAtomicIfChanged(file, text, { mode: 0o600 })
}
