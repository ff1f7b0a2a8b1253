import { createCipheriv, createDecipheriv, randomBytes, randomInt, scrypt as scryptCb, type ScryptOptions } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { isIP } from 'node:net'
import { z } from 'zod'
import type { MagflockConfig } from '../config/schema.js'
import { isMagflockError } from '../errors/index.js'
import type { SecretStore } from '../secrets/secret-store.js'
import { SUPERUSER_SECRET } from '../secrets/names.js'
import { redactor } from '../secrets/redact.js'
import { REPLICATOR_SECRET } from '../replication/role.js'
import { certMatches, describeCert, issueCert } from '../tls/certs.js'
import { TLS_OPERATOR_MANAGED } from '../tls/errors.js'
import { CA_KEY_SECRET, NODE_KEY_SECRET, tlsLayout } from '../tls/material.js'
import { writeFileAtomic } from '../platform/fs.js'
import {
  NODE_BUNDLE_CODE_WRONG,
  NODE_BUNDLE_CONFLICT,
  NODE_BUNDLE_CORRUPT,
  NODE_BUNDLE_EXPIRED,
  NODE_BUNDLE_KIND,
  NODE_BUNDLE_LISTEN,
  NODE_BUNDLE_UNREADABLE,
  NODE_BUNDLE_WRONG_FLOCK,
  NODE_BUNDLE_WRONG_NODE,
  NODE_INVITE_EXISTS,
  NODE_INVITE_NO_CA,
  NODE_INVITE_OUT_EXISTS,
  NODE_INVITE_SAN_INVALID,
  NODE_NAME_INVALID,
  NODE_RENEW_NOT_JOINED,
  NODE_RENEW_SELF,
  NODE_RENEW_UNKNOWN,
  NODE_SECRETS_MISSING,
} from './errors.js'
import { NODE_NAME, readClusterSettings } from './node-settings.js'

/**
 * The join bundle: everything a new host needs to join a multi-host flock, in one file
 * (docs/multi-host.md, "Adding a node").
 *
 *   magflock node invite b --san 10.0.0.2 --out b.join      on a node (admin, audited)
 *   magflock node join --bundle b.join --code … --listen 10.0.0.2   on the new host
 *
 * The inviting node issues b's certificate from the flock CA itself: the CA key never leaves
 * it (b gets its own certificate and key, nothing it could sign others with). The bundle holds
 * the CA certificate, b's certificate and key, the superuser and replication passwords, the
 * flock name and the etcd endpoints, encrypted with AES-256-GCM under a key derived by scrypt
 * from a one-time code of 100 random bits that `node invite` prints once and never stores. The
 * file alone is useless; file and code together are the flock's credentials (until expiresAt,
 * default 24 h, after which `node join` refuses it).
 *
 * File format (v1): one JSON object. Everything but `data` and `tag` is in the clear and
 * authenticated as GCM additional data (so `node join` can say "this bundle is for node c"
 * before asking for the code, and a header that was edited does not decrypt); `data` is the
 * encrypted payload (JSON, below).
 */
export const BUNDLE_MAGIC = 'magflock-join-bundle'
const MAX_BUNDLE_BYTES = 256 * 1024
/** scrypt cost: 32 MiB and ~0.1 s per try, on top of a 100-bit code. */
const KDF = { N: 2 ** 15, r: 8, p: 1 } as const
const SCRYPT_MAXMEM = 128 * 1024 * 1024
/** Crockford's base32: no I, L, O, U (read aloud and typed without confusion). */
const CODE_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
const CODE_CHARS = 20
export const DEFAULT_VALID_HOURS = 24

const b64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/)

const BundleHeader = z.object({
  magflock: z.literal(BUNDLE_MAGIC),
  v: z.literal(1),
  flock: z.string().min(1).max(200),
  node: z.string().regex(NODE_NAME),
  invitedBy: z.string().regex(NODE_NAME),
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  kdf: z.object({ name: z.literal('scrypt'), N: z.literal(KDF.N), r: z.literal(KDF.r), p: z.literal(KDF.p), salt: b64 }),
  cipher: z.literal('aes-256-gcm'),
  iv: b64,
  tag: b64,
  data: b64,
})
export type BundleHeader = z.infer<typeof BundleHeader>

const BundlePayload = z
  .object({
    flock: z.string(),
    node: z.string().regex(NODE_NAME),
    etcd: z.array(z.string()).min(1),
    ttlMs: z.number().int().positive(),
    tls: z.object({ caCert: z.string().min(1), nodeCert: z.string().min(1), nodeKey: z.string().min(1) }),
    /** The flock's passwords: in a join bundle only (a renewal carries none). */
    secrets: z.object({ superuser: z.string().min(1), replicator: z.string().min(1) }).optional(),
    /** A renewal bundle (`node invite --renew`): a new certificate for a node the flock has. */
    renew: z.literal(true).optional(),
  })
  .refine((p) => p.renew === true || p.secrets !== undefined, { message: 'a join bundle carries the passwords' })
export type BundlePayload = z.infer<typeof BundlePayload>

// ---------------------------------------------------------------------------------------------
// The one-time code and the cipher

/** A fresh code: 20 Crockford base32 characters (100 bits), shown as XXXXX-XXXXX-XXXXX-XXXXX. */
export function generateJoinCode(): string {
  let s = ''
  for (let i = 0; i < CODE_CHARS; i++) s += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)]
  return s.replace(/(.{5})(?=.)/g, '$1-')
}

/** The code as typed (any case, dashes or spaces, O for 0, I/L for 1) in canonical form, or undefined. */
export function normalizeJoinCode(code: string): string | undefined {
  const c = code.toUpperCase().replace(/[\s-]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1')
  return c.length === CODE_CHARS && [...c].every((ch) => CODE_ALPHABET.includes(ch)) ? c : undefined
}

function deriveKey(code: string, salt: Buffer): Promise<Buffer> {
  const opts: ScryptOptions = { ...KDF, maxmem: SCRYPT_MAXMEM }
  return new Promise((resolve, reject) => scryptCb(code, salt, 32, opts, (err, key) => (err ? reject(err) : resolve(key))))
}

/** The header fields GCM authenticates (everything in the clear, in a fixed order). */
function aadOf(h: Omit<BundleHeader, 'tag' | 'data'>): Buffer {
  return Buffer.from(JSON.stringify([h.magflock, h.v, h.flock, h.node, h.invitedBy, h.createdAt, h.expiresAt, h.kdf.name, h.kdf.N, h.kdf.r, h.kdf.p, h.kdf.salt, h.cipher, h.iv]))
}

/** Encrypts a payload under `code`: the bundle file's text and its header. */
export async function sealBundle(payload: BundlePayload, code: string, o: { invitedBy: string; now?: Date; validHours?: number }): Promise<{ text: string; header: BundleHeader }> {
  const canonical = normalizeJoinCode(code)
  if (!canonical) throw NODE_BUNDLE_CODE_WRONG({})
  const now = o.now ?? new Date()
  const salt = randomBytes(16)
  const iv = randomBytes(12)
  const head: Omit<BundleHeader, 'tag' | 'data'> = {
    magflock: BUNDLE_MAGIC,
    v: 1,
    flock: payload.flock,
    node: payload.node,
    invitedBy: o.invitedBy,
    createdAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + (o.validHours ?? DEFAULT_VALID_HOURS) * 3_600_000).toISOString(),
    kdf: { name: 'scrypt', ...KDF, salt: salt.toString('base64') },
    cipher: 'aes-256-gcm',
    iv: iv.toString('base64'),
  }
  const key = await deriveKey(canonical, salt)
  const c = createCipheriv('aes-256-gcm', key, iv)
  c.setAAD(aadOf(head))
  const data = Buffer.concat([c.update(JSON.stringify(payload), 'utf8'), c.final()])
  const header: BundleHeader = { ...head, tag: c.getAuthTag().toString('base64'), data: data.toString('base64') }
  return { text: JSON.stringify(header, null, 1) + '\n', header }
}

/** The bundle's header (no code needed): who it is for, until when. Throws E_NODE_BUNDLE_CORRUPT. */
export function parseBundle(text: string): BundleHeader {
  if (Buffer.byteLength(text) > MAX_BUNDLE_BYTES) throw NODE_BUNDLE_CORRUPT({ reason: `larger than ${MAX_BUNDLE_BYTES / 1024} KiB` })
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    throw NODE_BUNDLE_CORRUPT({ reason: 'not complete JSON (cut short?)' })
  }
  if (!raw || typeof raw !== 'object' || (raw as { magflock?: unknown }).magflock !== BUNDLE_MAGIC) throw NODE_BUNDLE_CORRUPT({ reason: 'not a join bundle' })
  if ((raw as { v?: unknown }).v !== 1) throw NODE_BUNDLE_CORRUPT({ reason: `format version ${String((raw as { v?: unknown }).v).slice(0, 20)} (this MagFlock reads 1)` })
  const h = BundleHeader.safeParse(raw)
  if (!h.success) throw NODE_BUNDLE_CORRUPT({ reason: `field ${h.error.issues[0]?.path.join('.') || '?'} is missing or malformed` })
  return h.data
}

/**
 * Decrypts and checks the payload. A wrong code and a changed byte anywhere (header, data,
 * tag) look the same to GCM: E_NODE_BUNDLE_CODE_WRONG. The secrets it holds are registered
 * with the redactor at once, so no later log line or error can show them.
 */
export async function openBundle(h: BundleHeader, code: string): Promise<BundlePayload> {
  const canonical = normalizeJoinCode(code)
  if (!canonical) throw NODE_BUNDLE_CODE_WRONG({})
  const key = await deriveKey(canonical, Buffer.from(h.kdf.salt, 'base64'))
  let plain: string
  try {
    const d = createDecipheriv('aes-256-gcm', key, Buffer.from(h.iv, 'base64'))
    d.setAAD(aadOf(h))
    d.setAuthTag(Buffer.from(h.tag, 'base64'))
    plain = Buffer.concat([d.update(Buffer.from(h.data, 'base64')), d.final()]).toString('utf8')
  } catch {
    throw NODE_BUNDLE_CODE_WRONG({})
  }
  let p: BundlePayload
  try {
    p = BundlePayload.parse(JSON.parse(plain))
  } catch {
    throw NODE_BUNDLE_CORRUPT({ reason: 'the decrypted content is not a join payload' })
  }
  for (const v of [p.secrets?.superuser, p.secrets?.replicator, p.tls.nodeKey]) if (v) redactor.add(v)
  if (p.node !== h.node || p.flock !== h.flock) throw NODE_BUNDLE_CORRUPT({ reason: 'the header and the content name different nodes' })
  return p
}

/** Reads a bundle file's header (E_NODE_BUNDLE_UNREADABLE / _CORRUPT). */
export async function readBundleFile(file: string): Promise<BundleHeader> {
  let text: string
  try {
    const st = await fsp.stat(file)
    if (!st.isFile()) throw new Error('not a regular file')
    if (st.size > MAX_BUNDLE_BYTES) throw NODE_BUNDLE_CORRUPT({ reason: `larger than ${MAX_BUNDLE_BYTES / 1024} KiB` })
    text = await fsp.readFile(file, 'utf8')
  } catch (err) {
    if (isMagflockError(err)) throw err
    throw NODE_BUNDLE_UNREADABLE({ file, reason: err instanceof Error ? err.message.replace(/^[A-Z]+: /, '') : String(err) })
  }
  return parseBundle(text)
}

/** Checks what the joining host asks of the bundle before its code is even asked for. */
export function checkBundleFor(h: BundleHeader, o: { node?: string | undefined; flock: string; now?: Date }): void {
  if (o.node !== undefined && o.node !== h.node) throw NODE_BUNDLE_WRONG_NODE({ bundle: h.node, asked: o.node })
  if (o.flock !== h.flock) throw NODE_BUNDLE_WRONG_FLOCK({ bundle: h.flock, config: o.flock })
  if ((o.now ?? new Date()).getTime() > Date.parse(h.expiresAt)) throw NODE_BUNDLE_EXPIRED({ expiresAt: h.expiresAt })
}

// ---------------------------------------------------------------------------------------------
// Invite (in the kernel of a node)

const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i

/** An address or DNS name other nodes reach the new host by (never loopback or unspecified). */
export function assertSan(san: string): void {
  const ip = isIP(san)
  const bad = ip !== 0 ? san.startsWith('127.') || san === '0.0.0.0' || san === '::' || san === '::1' : !DNS_NAME.test(san) || san.toLowerCase() === 'localhost'
  if (bad) throw NODE_INVITE_SAN_INVALID({ san })
}

export interface InviteRequest {
  node: string
  sans: string[]
  /** The etcd endpoints the new node uses (default: the inviting node's). */
  etcd?: string[] | undefined
  validHours?: number | undefined
  /**
   * A renewal: a new certificate (and key) for a node the flock already has, sealed without
   * the passwords; `tls renew --bundle` installs it there (docs/multi-host.md).
   */
  renew?: boolean | undefined
}

export interface InviteSummary {
  node: string
  flock: string
  invitedBy: string
  /** A renewal bundle (for `tls renew`), not a join bundle. */
  renew: boolean
  etcd: string[]
  /** Every name in the new node's certificate. */
  certNames: string[]
  certNotAfter: string
  certFingerprint: string
  expiresAt: string
}

/**
 * Issues the new node's certificate from the flock CA held here and seals it, with the
 * flock's passwords and the etcd endpoints, under a fresh code. Nothing is written: the
 * caller hands the bundle text to the operator. The CA key is read, used and dropped.
 */
export async function createInvite(o: {
  stateRoot: string
  config: MagflockConfig
  secrets: Pick<SecretStore, 'get'>
  inviter: { node: string; etcd: string[]; ttlMs: number }
  /** Names of the nodes the flock has (the store's topology). */
  existingNodes: () => Promise<string[]>
  request: InviteRequest
  now?: Date
}): Promise<{ bundle: string; code: string; summary: InviteSummary }> {
  const { request: r, config: cfg } = o
  if (!NODE_NAME.test(r.node)) throw NODE_NAME_INVALID({ name: r.node })
  for (const s of r.sans) assertSan(s)
  if (r.sans.length === 0) throw NODE_INVITE_SAN_INVALID({ san: '' })
  const known = r.node === o.inviter.node || (await o.existingNodes()).includes(r.node)
  if (r.renew) {
    // This node holds the CA key: it renews its own certificate with `tls rotate`.
    if (r.node === o.inviter.node) throw NODE_RENEW_SELF({ node: r.node })
    if (!known) throw NODE_RENEW_UNKNOWN({ node: r.node })
  } else if (known) throw NODE_INVITE_EXISTS({ node: r.node })
  if (cfg.tls.caFile !== undefined || cfg.tls.certFile !== undefined || cfg.tls.keyFile !== undefined) throw TLS_OPERATOR_MANAGED({})
  const caCert = await fsp.readFile(tlsLayout(o.stateRoot).caCert, 'utf8').catch(() => undefined)
  if (!caCert) throw NODE_INVITE_NO_CA({ reason: 'it has no flock CA certificate (<state>/tls/ca.crt)' })
  const caKey = await o.secrets.get(CA_KEY_SECRET)
  if (!caKey) throw NODE_INVITE_NO_CA({ reason: `its secret store has no ${CA_KEY_SECRET} (a node that joined with a bundle never gets it)` })
  let secrets: BundlePayload['secrets']
  if (!r.renew) {
    const superuser = await o.secrets.get(SUPERUSER_SECRET)
    const replicator = await o.secrets.get(REPLICATOR_SECRET)
    const missing = [...(superuser ? [] : [SUPERUSER_SECRET]), ...(replicator ? [] : [REPLICATOR_SECRET])]
    if (missing.length > 0 || !superuser || !replicator) throw NODE_SECRETS_MISSING({ names: missing })
    secrets = { superuser, replicator }
  }

  // The node name is a DNS SAN only when it is a valid host name (no "_").
  const names = [...new Set([...(DNS_NAME.test(r.node) ? [r.node] : []), 'localhost', '127.0.0.1', '::1', ...r.sans])]
  const cert = await issueCert({ ca: { certPem: caCert, keyPem: caKey }, commonName: r.node, sans: names, usage: 'server+client', days: cfg.tls.certDays, ...(o.now ? { now: o.now } : {}) })
  if (!certMatches(cert.certPem, cert.keyPem, caCert)) throw NODE_INVITE_NO_CA({ reason: `${CA_KEY_SECRET} does not belong to <state>/tls/ca.crt` })
  const payload: BundlePayload = {
    flock: cfg.flock,
    node: r.node,
    etcd: r.etcd ?? o.inviter.etcd,
    ttlMs: o.inviter.ttlMs,
    tls: { caCert, nodeCert: cert.certPem, nodeKey: cert.keyPem },
    ...(r.renew ? { renew: true as const } : { secrets }),
  }
  const code = generateJoinCode()
  const { text: bundle, header } = await sealBundle(payload, code, { invitedBy: o.inviter.node, ...(o.now ? { now: o.now } : {}), validHours: r.validHours ?? DEFAULT_VALID_HOURS })
  const info = describeCert(cert.certPem)
  return {
    bundle,
    code,
    summary: { node: r.node, flock: cfg.flock, invitedBy: o.inviter.node, renew: r.renew === true, etcd: payload.etcd, certNames: info.sans, certNotAfter: info.notAfter, certFingerprint: info.fingerprint256, expiresAt: header.expiresAt },
  }
}

// ---------------------------------------------------------------------------------------------
// Import (on the joining host, before its kernel starts)

export interface BundleImport {
  /** Secret names and files (relative to the state directory) written now. */
  imported: string[]
  /** Already there with the same value (a repeated join). */
  unchanged: string[]
}

interface Item {
  name: string
  value: string
  read(): Promise<string | undefined>
  write(): Promise<void>
  undo(): Promise<void>
}

/** The certificate files a bundle brings: the name its import reports → their place in tlsLayout. */
const TLS_FILES = { 'tls/node.crt': 'nodeCert', 'tls/ca.crt': 'caCert' } as const
type TlsFileName = keyof typeof TLS_FILES

/** Writes a certificate where the kernel reads it (<state>/tls, 0644). */
async function writeTlsFile(stateRoot: string, name: TlsFileName, value: string): Promise<void> {
  const l = tlsLayout(stateRoot)
  await fsp.mkdir(l.dir, { recursive: true, mode: 0o755 })
  await writeFileAtomic(l[TLS_FILES[name]], value, { mode: 0o644 })
}

/** Runs the steps in order; when one fails, undoes those done (the last first) and rethrows. */
async function allOrNothing(steps: Array<{ write(): Promise<unknown>; undo(): Promise<unknown> }>): Promise<void> {
  const done: typeof steps = []
  try {
    for (const step of steps) {
      await step.write()
      done.push(step)
    }
  } catch (err) {
    for (const step of done.reverse()) await step.undo().catch(() => undefined)
    throw err
  }
}

/** The bundle's certificate matches its key and CA (E_NODE_BUNDLE_CORRUPT) and names `listen` (E_NODE_BUNDLE_LISTEN). */
function checkBundleCert(p: BundlePayload, listen: string): void {
  let matches: boolean
  try {
    matches = certMatches(p.tls.nodeCert, p.tls.nodeKey, p.tls.caCert)
  } catch {
    matches = false
  }
  if (!matches) throw NODE_BUNDLE_CORRUPT({ reason: 'its certificate is not signed by its CA or does not match its key' })
  const certNames = describeCert(p.tls.nodeCert).sans
  if (!certNames.includes(listen)) throw NODE_BUNDLE_LISTEN({ listen, sans: certNames })
}

/**
 * Puts the bundle's material where a joining node's kernel reads it: the node key and the
 * passwords in the secret store, ca.crt and node.crt in <state>/tls. All or nothing: every
 * check first (the certificate matches its key and the CA and names `listen`; nothing here
 * differs from the bundle), then the writes; a write that fails undoes those before it.
 * Values already present and equal are left alone, so running the same join again is fine.
 */
export async function importBundle(o: { stateRoot: string; config: MagflockConfig; secrets: SecretStore; payload: BundlePayload; listen: string }): Promise<BundleImport> {
  const p = o.payload
  if (p.renew || !p.secrets) throw NODE_BUNDLE_KIND({ node: p.node, renew: true })
  if (o.config.flock !== p.flock) throw NODE_BUNDLE_WRONG_FLOCK({ bundle: p.flock, config: o.config.flock })
  checkBundleCert(p, o.listen)
  const own = ['caFile', 'certFile', 'keyFile'].filter((k) => o.config.tls[k as 'caFile'] !== undefined)
  if (own.length > 0) throw NODE_BUNDLE_CONFLICT({ names: own.map((k) => `tls.${k} (magflock.yaml: your own certificates)`) })

  const l = tlsLayout(o.stateRoot)
  const secret = (name: string, value: string): Item => ({
    name,
    value,
    read: () => o.secrets.get(name),
    write: () => o.secrets.set(name, value),
    undo: async () => {
      await o.secrets.delete(name)
    },
  })
  const file = (name: TlsFileName, value: string): Item => ({
    name,
    value,
    read: () => fsp.readFile(l[TLS_FILES[name]], 'utf8').catch(() => undefined),
    write: () => writeTlsFile(o.stateRoot, name, value),
    undo: () => fsp.rm(l[TLS_FILES[name]], { force: true }),
  })
  // Keys and passwords first, certificates last: a certificate on disk without its key would
  // make the kernel fail with E_TLS_KEY_MISSING instead of "no certificates".
  const items = [
    secret(NODE_KEY_SECRET, p.tls.nodeKey),
    secret(SUPERUSER_SECRET, p.secrets.superuser),
    secret(REPLICATOR_SECRET, p.secrets.replicator),
    file('tls/node.crt', p.tls.nodeCert),
    file('tls/ca.crt', p.tls.caCert),
  ]
  const current = await Promise.all(items.map((i) => i.read()))
  const conflicts = items.filter((i, n) => current[n] !== undefined && current[n] !== i.value).map((i) => i.name)
  if (conflicts.length > 0) throw NODE_BUNDLE_CONFLICT({ names: conflicts })
  const todo = items.filter((_, n) => current[n] === undefined)
  await allOrNothing(todo)
  return { imported: todo.map((i) => i.name), unchanged: items.filter((_, n) => current[n] !== undefined).map((i) => i.name) }
}

/**
 * Takes back what `importBundle` wrote (its `imported` list; values that were already there
 * stay): a join whose kernel did not come up leaves the state directory as it found it.
 */
export async function undoBundleImport(o: { stateRoot: string; secrets: Pick<SecretStore, 'delete'>; imported: BundleImport }): Promise<void> {
  const l = tlsLayout(o.stateRoot)
  // Certificates first (the reverse of the import), so no certificate is left without its key.
  for (const name of [...o.imported.imported].reverse()) {
    if (name in TLS_FILES) await fsp.rm(l[TLS_FILES[name as TlsFileName]], { force: true })
    else await o.secrets.delete(name)
  }
}

export interface RenewalImport {
  node: string
  /** Secret names and files (relative to the state directory) replaced. */
  replaced: string[]
  /** Already equal to the bundle's (the same renewal installed again). */
  unchanged: string[]
  /** The bundle brought another flock CA certificate (the CA was replaced with `tls rotate --ca`). */
  caReplaced: boolean
}

/**
 * Installs a renewal bundle (`node invite NAME --renew`) on the node it was issued for: its new
 * key in the secret store, node.crt (and ca.crt when the flock CA was replaced) in <state>/tls.
 * Every check first: a renewal (a join bundle is E_NODE_BUNDLE_KIND), this project's flock,
 * this state directory is that node (cluster.json) and already holds a node key and
 * certificate, the new certificate matches its key and CA and still names the node's
 * `--listen` address. Then the writes (the certificates, then the key); a write that fails puts
 * back what the ones before it replaced. The flock's passwords are not in a renewal and are not touched.
 */
export async function importRenewal(o: { stateRoot: string; config: MagflockConfig; secrets: SecretStore; payload: BundlePayload }): Promise<RenewalImport> {
  const p = o.payload
  if (!p.renew) throw NODE_BUNDLE_KIND({ node: p.node, renew: false })
  if (o.config.flock !== p.flock) throw NODE_BUNDLE_WRONG_FLOCK({ bundle: p.flock, config: o.config.flock })
  if (o.config.tls.caFile !== undefined || o.config.tls.certFile !== undefined || o.config.tls.keyFile !== undefined) throw TLS_OPERATOR_MANAGED({})
  const settings = await readClusterSettings(o.stateRoot)
  if (!settings) throw NODE_RENEW_NOT_JOINED({ reason: 'it has no node settings (<state>/cluster.json): it never joined a multi-host flock' })
  if (settings.node !== p.node) throw NODE_BUNDLE_WRONG_NODE({ bundle: p.node, asked: settings.node })
  const l = tlsLayout(o.stateRoot)
  const [oldKey, oldCert, oldCa] = await Promise.all([o.secrets.get(NODE_KEY_SECRET), fsp.readFile(l.nodeCert, 'utf8').catch(() => undefined), fsp.readFile(l.caCert, 'utf8').catch(() => undefined)])
  if (!oldKey || !oldCert || !oldCa) throw NODE_RENEW_NOT_JOINED({ reason: `it holds no node certificate to renew (${[...(oldKey ? [] : [NODE_KEY_SECRET]), ...(oldCert ? [] : ['tls/node.crt']), ...(oldCa ? [] : ['tls/ca.crt'])].join(', ')} missing)` })
  checkBundleCert(p, settings.listen)

  const items = [
    { name: 'tls/ca.crt', old: oldCa, value: p.tls.caCert, put: (v: string) => writeTlsFile(o.stateRoot, 'tls/ca.crt', v) },
    { name: 'tls/node.crt', old: oldCert, value: p.tls.nodeCert, put: (v: string) => writeTlsFile(o.stateRoot, 'tls/node.crt', v) },
    { name: NODE_KEY_SECRET, old: oldKey, value: p.tls.nodeKey, put: (v: string) => o.secrets.set(NODE_KEY_SECRET, v) },
  ]
  const todo = items.filter((i) => i.old !== i.value)
  await allOrNothing(todo.map((i) => ({ write: () => i.put(i.value), undo: () => i.put(i.old) })))
  return { node: p.node, replaced: todo.map((i) => i.name), unchanged: items.filter((i) => i.old === i.value).map((i) => i.name), caReplaced: oldCa !== p.tls.caCert }
}

/**
 * Writes a bundle where the operator asked: a new file only (never overwrites, E_NODE_INVITE_OUT_EXISTS),
 * 0600 from its creation on, flushed to disk.
 */
export async function writeBundleFile(file: string, text: string): Promise<void> {
  let fh: Awaited<ReturnType<typeof fsp.open>>
  try {
    fh = await fsp.open(file, 'wx', 0o600)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw NODE_INVITE_OUT_EXISTS({ file })
    throw err
  }
  try {
    await fh.chmod(0o600)
    await fh.writeFile(text, 'utf8')
    await fh.sync()
  } catch (err) {
    await fh.close().catch(() => undefined)
    await fsp.rm(file, { force: true })
    throw err
  }
  await fh.close()
}

/** Refuses early (before anything is issued) when the bundle file exists. */
export async function assertBundleFileFree(file: string): Promise<void> {
  if (await fsp.lstat(file).then(() => true, () => false)) throw NODE_INVITE_OUT_EXISTS({ file })
}
