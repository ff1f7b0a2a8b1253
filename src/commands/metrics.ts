import { MagflockCommand } from '../cli/base-command.js'
import { metrics } from '../api/core.js'
import type { RouteOutput } from '../api/route.js'

/** The `--json` result: the route's response, as its contract (metrics) defines it. */
export type MetricsResult = RouteOutput<typeof metrics>

export default class Metrics extends MagflockCommand<MetricsResult> {
  static override summary = 'Print the kernel\'s Prometheus metrics (the same text /metrics serves).'
  static override examples = ['<%= config.bin %> metrics', '<%= config.bin %> metrics | promtool check metrics']

  async run(): Promise<MetricsResult> {
    await this.parse(Metrics)
    const r = await this.kernel().call(metrics, {})
    if (!this.jsonEnabled()) process.stdout.write(r.text)
    return r
  }
}
