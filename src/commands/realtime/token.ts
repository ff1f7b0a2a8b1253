import { Flags } from '@oclif/core'
import { realtimeToken, type RealtimeTokenResult } from '../../api/realtime.js'
import { MagflockCommand } from '../../cli/base-command.js'
import { REALTIME_BAD_CLAIMS } from '../../realtime/errors.js'

export default class RealtimeToken extends MagflockCommand<RealtimeTokenResult> {
  static override summary = 'Issue a realtime JWT (HS256, signed by the flock secret in the vault) for realtime-js / supabase-js.'
  static override description =
    'The token carries `role` (the database role whose row-level security decides which changes the client sees), `exp`, and any ' +
    'extra claims (available to policies as current_setting(\'request.jwt.claims\')). Claim `topics` lists the private channels the ' +
    'holder may join ("room:*" matches a prefix). Every issue is audited (role, claim names, expiry). The token is printed: treat it as a secret.'
  static override examples = [
    '<%= config.bin %> realtime token --role anon --expires 1d',
    '<%= config.bin %> realtime token --role authenticated --claims \'{"sub":"user-42","topics":["room:*"]}\' --json',
  ]
  static override flags = {
    role: Flags.string({ summary: 'Database role the client acts as.', required: true }),
    claims: Flags.string({ summary: 'Extra claims as a JSON object.' }),
    expires: Flags.string({ summary: 'Lifetime: seconds, or a number with s, m, h or d (60s to 365d).', default: '1h' }),
  }

  async run(): Promise<RealtimeTokenResult> {
    const { flags } = await this.parse(RealtimeToken)
    let claims: Record<string, unknown> | undefined
    if (flags.claims !== undefined) {
      let v: unknown
      try {
        v = JSON.parse(flags.claims)
      } catch {
        throw REALTIME_BAD_CLAIMS({ reason: '--claims is not valid JSON' })
      }
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw REALTIME_BAD_CLAIMS({ reason: '--claims must be a JSON object' })
      claims = v as Record<string, unknown>
    }
    const r = await this.kernel().call(realtimeToken, { role: flags.role, claims, expiresInSeconds: parseDuration(flags.expires) })
    this.log(r.token)
    return r
  }
}

function parseDuration(s: string): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(s.trim())
  if (!m) throw REALTIME_BAD_CLAIMS({ reason: `--expires "${s}" is not a duration like 3600, 15m, 12h or 7d` })
  const n = Number(m[1])
  const mult = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd']
  const secs = n * mult
  if (secs < 60 || secs > 31_536_000) throw REALTIME_BAD_CLAIMS({ reason: `--expires must be between 60s and 365d, not ${s}` })
  return secs
}
