import { MagflockCommand } from '../../cli/base-command.js'
import { AuditLog } from '../../kernel/audit.js'
import { defineError } from '../../errors/index.js'

export type AuditVerifyResult = { ok: boolean; records: number; headHash: string | null; problems: Array<{ line: number; problem: string }> }

const AUDIT_TAMPERED = defineError<{ problems: number; first: string }>({
  code: 'E_AUDIT_TAMPERED',
  class: 'data_loss',
  area: 'audit',
  message: (a) => `The audit log fails verification: ${a.problems} problem(s), first: ${a.first}.`,
  hint: () => 'Someone edited, deleted or truncated audit records. Keep a copy of <state>/audit/ for investigation; run with --json for every problem.',
})

export default class AuditVerify extends MagflockCommand<AuditVerifyResult> {
  static override summary = 'Verify the audit log hash chain (edited, deleted or truncated records → exit 11).'
  static override description = 'Reads <state>/audit/ directly, so it works with the kernel stopped.'
  static override examples = ['<%= config.bin %> audit verify', '<%= config.bin %> audit verify --json']

  async run(): Promise<AuditVerifyResult> {
    await this.parse(AuditVerify)
    const layout = this.layout()
    const r = await AuditLog.verify({ auditLog: layout.auditLog, auditHead: layout.auditHead })
    if (!r.ok) throw AUDIT_TAMPERED({ problems: r.problems.length, first: `line ${r.problems[0]?.line}: ${r.problems[0]?.problem}` }, { details: { ...r } })
    this.log(`Audit log intact: ${r.records} record(s), head ${r.headHash ?? '(empty)'}.`)
    return r
  }
}
