import { Flags } from '@oclif/core'
import { MagflockCommand } from '../cli/base-command.js'
import { readEvents, type StreamLine } from '../client/events.js'

export type EventsResult = { lines: number; lastSeq: number | null }

/**
 * `magflock events`: the kernel's event stream (GET /v1/events). Human lines, or with --json
 * the stream itself, one JSON object per line (NDJSON) — not the usual {ok,data} envelope; an
 * error is one last line {"ok":false,"error":{…}}. Exit codes: 0 the stream ended (no
 * --follow, or the kernel closed it), the error classes otherwise (7 kernel not running or
 * lost, 9 not permitted, 2 bad flags or cursor).
 */
export default class Events extends MagflockCommand<EventsResult> {
  static override summary = 'Print kernel events (backups, failovers, instances, config, hooks…), and follow new ones.'
  static override description =
    'Events are numbered (seq) and kept in a bounded journal in the state directory: resume with --after SEQ (the seq of the last line you processed). When the cursor is older than the journal keeps, a first line says events were missed.'
  static override examples = [
    '<%= config.bin %> events',
    '<%= config.bin %> events --follow --type "replication.*,failover.*"',
    '<%= config.bin %> events --after 1200 --json',
  ]
  static override flags = {
    follow: Flags.boolean({ char: 'f', summary: 'Keep printing new events until interrupted.', default: false }),
    type: Flags.string({ char: 't', summary: 'Only these event types: comma-separated, a trailing * matches a prefix (backup.*).' }),
    after: Flags.integer({ summary: 'Only events after this seq (resume from a cursor).', min: 0 }),
  }

  protected override logJson(json: unknown): void {
    // The events were streamed as NDJSON already; only an error adds a (one-line) record.
    if ((json as { ok?: boolean }).ok === false) process.stdout.write(JSON.stringify(json) + '\n')
  }

  async run(): Promise<EventsResult> {
    const { flags } = await this.parse(Events)
    const client = this.kernel()
    const json = this.jsonEnabled()
    const stop = new AbortController()
    const onSignal = () => stop.abort()
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    let lastSeq: number | null = null
    try {
      const res = await readEvents({
        socketPath: client.socketPath,
        stateDir: client.layout.root,
        token: client.token(),
        query: { after: flags.after, type: flags.type, follow: flags.follow },
        signal: stop.signal,
        onLine: (line) => {
          if (typeof line.seq === 'number') lastSeq = line.seq
          if (json) process.stdout.write(JSON.stringify(line) + '\n')
          else if (line.type.startsWith('stream.')) process.stderr.write(describeControl(line) + '\n')
          else this.log(humanLine(line))
        },
      })
      return { lines: res.lines, lastSeq }
    } finally {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    }
  }
}

function humanLine(l: StreamLine): string {
  const data = l.data && typeof l.data === 'object' ? Object.entries(l.data as Record<string, unknown>).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`) : []
  return `${String(l.seq).padStart(6)}  ${l.time ?? ''}  ${l.type}  ${data.join(' ')}`.trimEnd()
}

function describeControl(l: StreamLine): string {
  const d = (l.data ?? {}) as Record<string, unknown>
  if (l.type === 'stream.missed') return `(events after ${String(d.after)} up to ${Number(d.oldestSeq) - 1} are no longer kept: they were missed)`
  if (l.type === 'stream.closed') return `(the kernel closed the stream: ${String(d.reason)}; resume with --after ${String(d.resumeAfter)})`
  return `(${l.type})`
}
