import path from 'node:path'
import { Args, Flags } from '@oclif/core'
import { MagflockCommand } from '../../cli/base-command.js'
import { nodeInvite } from '../../api/node.js'
import { assertBundleFileFree, writeBundleFile, type InviteSummary } from '../../cluster/join-bundle.js'

export type NodeInviteResult = InviteSummary & {
  /** The bundle file (0600). */
  file: string
  /** The one-time code that opens the bundle: shown once (like a token), kept nowhere. */
  code: string
}

/**
 * On a node of a multi-host flock: one file and one code that let a new host join with
 * `magflock node join --bundle FILE --code CODE --listen ADDR` (src/cluster/join-bundle.ts).
 */
export default class NodeInvite extends MagflockCommand<NodeInviteResult> {
  static override summary = 'Invite a new host into this multi-host flock: write its join bundle (certificate, passwords, etcd endpoints) and print the code that opens it.'
  static override description =
    'Admin only, audited (without any secret). The node\'s kernel issues the new node\'s certificate from the flock CA (the CA key never leaves this node) and ' +
    'seals it, with the superuser and replication passwords, the flock name and the etcd endpoints, into --out (a new file, mode 0600), encrypted under a one-time code ' +
    'shown once. Carry the file and the code to the new host by different channels; the bundle expires after --valid-hours. ' +
    'With --renew: a new certificate for a node the flock already has, sealed without the passwords, for `magflock tls renew --bundle FILE` on that node. ' +
    'Exit 2 on a bad name or address (or --renew of this node itself: it runs `tls rotate`), 3 when --renew names no node of the flock, 4 when the node name is taken (without --renew) or --out exists, 5 when this kernel is not a node or holds no flock CA key, 9 for a non-admin token.'
  static override examples = [
    '<%= config.bin %> node invite b --san 10.0.0.2 --out b.join',
    '<%= config.bin %> node invite c --san 10.0.0.3 --san db-c.example.org --out c.join --valid-hours 2 --json',
    '<%= config.bin %> node invite b --renew --san 10.0.0.2 --out b.renew',
  ]
  static override args = { name: Args.string({ required: true, description: 'The new node\'s name (a lowercase letter, then up to 39 lowercase letters, digits or _).' }) }
  static override flags = {
    san: Flags.string({ summary: 'An address (or DNS name) other nodes reach the new host by; its --listen must be one. Repeatable.', required: true, multiple: true }),
    out: Flags.string({ summary: 'The bundle file to write (must not exist; created 0600).', required: true }),
    etcd: Flags.string({ summary: 'etcd client URLs for the new node, comma separated (default: this node\'s).' }),
    'valid-hours': Flags.integer({ summary: 'Hours until `node join` (or `tls renew`) refuses the bundle.', default: 24, min: 1, max: 720 }),
    renew: Flags.boolean({ summary: 'A new certificate for a node the flock already has (before its own expires): a renewal bundle, without the passwords, for `magflock tls renew --bundle` on that node.' }),
  }

  async run(): Promise<NodeInviteResult> {
    const { args, flags } = await this.parse(NodeInvite)
    const file = path.resolve(flags.out)
    await assertBundleFileFree(file)
    const r = await this.kernel().call(nodeInvite, { node: args.name, sans: flags.san, validHours: flags['valid-hours'], renew: flags.renew, ...(flags.etcd !== undefined ? { etcd: flags.etcd } : {}) })
    await writeBundleFile(file, r.bundle)
    this.log(`${r.renew ? 'Renewal' : 'Join'} bundle for node ${r.node} of flock ${r.flock} written to ${file} (0600; expires ${r.expiresAt}).`)
    this.log(`Certificate names: ${r.certNames.join(', ')} (until ${r.certNotAfter.slice(0, 10)}).`)
    this.log(`Code (shown once, carry it apart from the file): ${r.code}`)
    if (r.renew) this.log(`On node ${r.node}, in its project directory (it asks for the code): ${this.cli} tls renew --bundle ${path.basename(file)}`)
    else this.log(`On the new host (it asks for the code): ${this.cli} node join --bundle ${path.basename(file)} --listen ${flags.san[0] ?? '<address>'}`)
    return { node: r.node, flock: r.flock, invitedBy: r.invitedBy, renew: r.renew, etcd: r.etcd, certNames: r.certNames, certNotAfter: r.certNotAfter, certFingerprint: r.certFingerprint, expiresAt: r.expiresAt, file, code: r.code }
  }
}
