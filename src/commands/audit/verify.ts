import { MagflockCommand } from '../../cli/base-command.js'
import { AuditLog, auditPathsOf, storeKeyring } from '../../kernel/audit.js'
import { openSecretStore } from '../../secrets/store.js'
import { defineError } from '../../errors/index.js'

export type AuditVerifyResult = { ok: boolean; records: number; headHash: string | null; problems: Array<{ line: number; problem: string }> }

const AUDIT_TAMPERED = defineError<{ problems: number; first: string }>({
  code: 'E_AUDIT_TAMPERED',
  class: 'data_loss',
  area: 'audit',
  message: (a) => `The audit log fails verification: ${a.problems} problem(s), first: ${a.first}.`,
  hint: () => 'Someone edited, deleted or truncated audit records, or replaced or restarted the log. Keep a copy of <state>/audit/ for investigation; run with --json for every problem.',
})

export default class AuditVerify extends MagflockCommand<AuditVerifyResult> {
  static override summary = 'Verify the audit log hash chain (edited, deleted, truncated or restarted log → exit 11).'
  static override description =
    'Reads <state>/audit/, the anchor <state>/audit.anchor and the chain key in the secret store directly, so it works with the kernel stopped. What the chain proves and does not prove: docs/operations.md, "Audit guarantees".'
  static override examples = ['<%= config.bin %> audit verify', '<%= config.bin %> audit verify --json']

  async run(): Promise<AuditVerifyResult> {
    await this.parse(AuditVerify)
    const layout = this.layout()
    const store = await openSecretStore({ layout, readOnly: true })
    const r = await AuditLog.verify(auditPathsOf(layout), { keyring: storeKeyring(store) })
    if (!r.ok) throw AUDIT_TAMPERED({ problems: r.problems.length, first: `line ${r.problems[0]?.line}: ${r.problems[0]?.problem}` }, { details: { ...r } })
    this.log(`Audit log intact: ${r.records} record(s), head ${r.headHash ?? '(empty)'}.`)
    return r
  }
}
