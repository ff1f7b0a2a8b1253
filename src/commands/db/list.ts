import { dbList } from '../../api/db.js'
import { MagflockCommand } from '../../cli/base-command.js'
import type { RouteOutput } from '../../api/route.js'

/** The `--json` result: the route's response, as its contract (dbList) defines it. */
export type DbListResult = RouteOutput<typeof dbList>

export default class DbList extends MagflockCommand<DbListResult> {
  static override summary = 'List the databases of the flock with size, owner and open connections.'
  static override examples = ['<%= config.bin %> db list', '<%= config.bin %> db list --json']

  async run(): Promise<DbListResult> {
    await this.parse(DbList)
    const res = await this.kernel().call(dbList, {})
    const rows = res.databases.map((d) => [d.name, d.owner, mib(d.sizeBytes), String(d.connections), d.managed ? 'yes' : ''])
    const head = ['NAME', 'OWNER', 'SIZE', 'CONNECTIONS', 'MANAGED']
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
    for (const r of [head, ...rows]) this.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd())
    return res
  }
}

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}
