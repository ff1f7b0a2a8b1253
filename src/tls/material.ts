import { existsSync, promises as fsp } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { MagflockConfig } from '../config/schema.js'
import type { SecretStore } from '../kernel/services.js'
import { writeFileAtomic } from '../platform/fs.js'
import type { OsUser } from '../platform/os-user.js'
import { certMatches, createCa, describeCert, issueCert, type CertInfo, type Pem } from './certs.js'
import {
  TLS_ALREADY_INITIALIZED,
  TLS_BAD_NAME,
  TLS_CERT_MISMATCH,
  TLS_FILES_INCOMPLETE,
  TLS_FILE_UNREADABLE,
  TLS_KEY_MISSING,
  TLS_NOT_INITIALIZED,
  TLS_OPERATOR_MANAGED,
} from './errors.js'

/**
 * Where a node's TLS material lives and where it comes from (docs/multi-host.md, "TLS and
 * certificates").
 *
 *   <state>/tls/ca.crt, node.crt       public certificates (0644), the flock CA's and this node's
 *   vault: tls.ca.key, tls.node.key    the private keys, only ever in the secret store
 *   <state>/tls/postgres/               copies Postgres reads (ssl_cert_file, ssl_key_file,
 *                                      ssl_ca_file, sslrootcert of replication), owned by the
 *                                      Postgres OS user, 0700/0600: Postgres refuses a key
 *                                      another user can read, and cannot read the vault
 *
 * The operator's own CA, certificate and key (tls.caFile, tls.certFile, tls.keyFile) replace
 * the flock CA: then MagFlock only reads them (and copies them for Postgres), never issues.
 */
export const CA_KEY_SECRET = 'tls.ca.key'
export const NODE_KEY_SECRET = 'tls.node.key'

export interface TlsLayout {
  dir: string
  caCert: string
  nodeCert: string
  pgDir: string
  pgCa: string
  pgCert: string
  pgKey: string
}

export function tlsLayout(stateRoot: string): TlsLayout {
  const dir = path.join(stateRoot, 'tls')
  const pgDir = path.join(dir, 'postgres')
  return {
    dir,
    caCert: path.join(dir, 'ca.crt'),
    nodeCert: path.join(dir, 'node.crt'),
    pgDir,
    pgCa: path.join(pgDir, 'ca.crt'),
    pgCert: path.join(pgDir, 'server.crt'),
    pgKey: path.join(pgDir, 'server.key'),
  }
}

export type TlsSource = 'flock-ca' | 'operator'

/** The node's CA certificate, certificate and key, resolved from the vault or the operator's files. */
export interface NodeTls {
  source: TlsSource
  caPem: string
  certPem: string
  keyPem: string
}

const NAME_RE = /^[a-z0-9][a-z0-9.-]{0,62}$/

export function assertCertName(name: string): void {
  if (!NAME_RE.test(name)) throw TLS_BAD_NAME({ name })
}

/** The node's name in its certificate: tls.nodeName, else the host name (lowercased). */
export function nodeNameOf(cfg: MagflockConfig): string {
  const n = cfg.tls.nodeName ?? os.hostname().toLowerCase()
  return NAME_RE.test(n) ? n : 'node'
}

/** Host part of api.listen ("10.0.0.1:7543", "[::1]:7543"). */
export function apiListenHost(listen: string): string {
  const m = listen.match(/^\[?([^\]]+?)\]?:(\d+)$/)
  return m?.[1] ?? listen
}

/** Every name a peer may dial this node by: node name, localhost, loopback, configured addresses. */
export function nodeSans(cfg: MagflockConfig): string[] {
  const sans = [nodeNameOf(cfg), 'localhost', '127.0.0.1', '::1', ...cfg.postgres.listen, ...cfg.tls.sans]
  if (cfg.api.listen) sans.push(apiListenHost(cfg.api.listen))
  return [...new Set(sans)]
}

function operatorFiles(cfg: MagflockConfig): { caFile: string; certFile: string; keyFile: string } | undefined {
  const { caFile, certFile, keyFile } = cfg.tls
  if (caFile === undefined && certFile === undefined && keyFile === undefined) return undefined
  const missing = [caFile === undefined && 'tls.caFile', certFile === undefined && 'tls.certFile', keyFile === undefined && 'tls.keyFile'].filter((x): x is string => !!x)
  if (missing.length > 0 || !caFile || !certFile || !keyFile) throw TLS_FILES_INCOMPLETE({ missing })
  return { caFile, certFile, keyFile }
}

async function readPem(key: string, file: string, projectDir: string): Promise<string> {
  const abs = path.resolve(projectDir, file)
  try {
    const text = await fsp.readFile(abs, 'utf8')
    if (!text.includes('-----BEGIN ')) throw new Error('not a PEM file')
    return text
  } catch (err) {
    throw TLS_FILE_UNREADABLE({ key, file: abs, reason: err instanceof Error ? err.message.replace(/^[A-Z]+: /, '') : String(err) })
  }
}

/**
 * The node's TLS material, or undefined when the flock has none (one-host default). Checks
 * that the certificate is signed by the CA and matches the key (E_TLS_CERT_MISMATCH).
 */
export async function resolveNodeTls(o: { stateRoot: string; projectDir: string; config: MagflockConfig; secrets: Pick<SecretStore, 'get'> }): Promise<NodeTls | undefined> {
  const own = operatorFiles(o.config)
  let tls: NodeTls
  if (own) {
    const keyPem = own.keyFile.startsWith('secret:') ? await o.secrets.get(own.keyFile.slice('secret:'.length)) : await readPem('tls.keyFile', own.keyFile, o.projectDir)
    if (!keyPem) throw TLS_KEY_MISSING({ secret: own.keyFile.slice('secret:'.length) })
    tls = { source: 'operator', caPem: await readPem('tls.caFile', own.caFile, o.projectDir), certPem: await readPem('tls.certFile', own.certFile, o.projectDir), keyPem }
  } else {
    const l = tlsLayout(o.stateRoot)
    const caPem = await fsp.readFile(l.caCert, 'utf8').catch(() => undefined)
    const certPem = await fsp.readFile(l.nodeCert, 'utf8').catch(() => undefined)
    if (!caPem || !certPem) return undefined
    const keyPem = await o.secrets.get(NODE_KEY_SECRET)
    if (!keyPem) throw TLS_KEY_MISSING({ secret: NODE_KEY_SECRET })
    tls = { source: 'flock-ca', caPem, certPem, keyPem }
  }
  let ok: boolean
  try {
    ok = certMatches(tls.certPem, tls.keyPem, tls.caPem)
  } catch (err) {
    throw TLS_CERT_MISMATCH({ reason: err instanceof Error ? err.message : String(err) })
  }
  if (!ok) throw TLS_CERT_MISMATCH({ reason: 'it is not signed by the CA or does not match the key' })
  return tls
}

async function writePublic(file: string, pem: string): Promise<void> {
  await writeFileAtomic(file, pem, { mode: 0o644 })
}

async function issueNode(cfg: MagflockConfig, ca: Pem): Promise<Pem> {
  return issueCert({ ca, commonName: nodeNameOf(cfg), sans: nodeSans(cfg), usage: 'server+client', days: cfg.tls.certDays })
}

export interface TlsStatus {
  source: TlsSource | 'none'
  node: string
  ca: CertInfo | null
  cert: CertInfo | null
  /** Files Postgres reads (present once a kernel started with TLS, or after rotate). */
  postgresFiles: boolean
}

/** Creates the flock CA and this node's certificate; keys go to the vault, certificates to <state>/tls. */
export async function initTls(o: { stateRoot: string; config: MagflockConfig; secrets: SecretStore }): Promise<TlsStatus> {
  if (operatorFiles(o.config)) throw TLS_OPERATOR_MANAGED({})
  const l = tlsLayout(o.stateRoot)
  if (existsSync(l.caCert)) throw TLS_ALREADY_INITIALIZED({ dir: l.dir })
  const ca = await createCa(o.config.flock, o.config.tls.caDays)
  const node = await issueNode(o.config, ca)
  await fsp.mkdir(l.dir, { recursive: true, mode: 0o755 })
  // Keys first: a certificate on disk without its key would be unusable.
  await o.secrets.set(CA_KEY_SECRET, ca.keyPem)
  await o.secrets.set(NODE_KEY_SECRET, node.keyPem)
  await writePublic(l.nodeCert, node.certPem)
  await writePublic(l.caCert, ca.certPem)
  return tlsStatus({ ...o, projectDir: o.stateRoot, secrets: o.secrets })
}

/**
 * A new node certificate (and with `ca`, a new flock CA first: every other node then needs a
 * certificate from it). The running Postgres instances pick the new files up on SIGHUP.
 */
export async function rotateTls(o: { stateRoot: string; config: MagflockConfig; secrets: SecretStore; ca: boolean }): Promise<TlsStatus> {
  if (operatorFiles(o.config)) throw TLS_OPERATOR_MANAGED({})
  const l = tlsLayout(o.stateRoot)
  const caCertPem = await fsp.readFile(l.caCert, 'utf8').catch(() => undefined)
  if (!caCertPem) throw TLS_NOT_INITIALIZED({})
  let ca: Pem
  if (o.ca) {
    ca = await createCa(o.config.flock, o.config.tls.caDays)
  } else {
    const keyPem = await o.secrets.get(CA_KEY_SECRET)
    if (!keyPem) throw TLS_KEY_MISSING({ secret: CA_KEY_SECRET })
    ca = { certPem: caCertPem, keyPem }
  }
  const node = await issueNode(o.config, ca)
  if (o.ca) await o.secrets.set(CA_KEY_SECRET, ca.keyPem)
  await o.secrets.set(NODE_KEY_SECRET, node.keyPem)
  await writePublic(l.nodeCert, node.certPem)
  if (o.ca) await writePublic(l.caCert, ca.certPem)
  return tlsStatus({ ...o, projectDir: o.stateRoot })
}

/** A client certificate (CN = name) for remote CLI use over the mutual-TLS control API. */
export async function issueClientCert(o: { stateRoot: string; config: MagflockConfig; secrets: SecretStore; name: string }): Promise<Pem & { caPem: string }> {
  assertCertName(o.name)
  if (operatorFiles(o.config)) throw TLS_OPERATOR_MANAGED({})
  const l = tlsLayout(o.stateRoot)
  const caPem = await fsp.readFile(l.caCert, 'utf8').catch(() => undefined)
  if (!caPem) throw TLS_NOT_INITIALIZED({})
  const keyPem = await o.secrets.get(CA_KEY_SECRET)
  if (!keyPem) throw TLS_KEY_MISSING({ secret: CA_KEY_SECRET })
  const c = await issueCert({ ca: { certPem: caPem, keyPem }, commonName: o.name, sans: [], usage: 'client', days: o.config.tls.certDays })
  return { ...c, caPem }
}

export async function tlsStatus(o: { stateRoot: string; projectDir: string; config: MagflockConfig; secrets?: Pick<SecretStore, 'get'> }): Promise<TlsStatus> {
  const l = tlsLayout(o.stateRoot)
  const own = operatorFiles(o.config)
  let caPem: string | undefined
  let certPem: string | undefined
  if (own) {
    caPem = await readPem('tls.caFile', own.caFile, o.projectDir)
    certPem = await readPem('tls.certFile', own.certFile, o.projectDir)
  } else {
    caPem = await fsp.readFile(l.caCert, 'utf8').catch(() => undefined)
    certPem = await fsp.readFile(l.nodeCert, 'utf8').catch(() => undefined)
  }
  return {
    source: own ? 'operator' : caPem ? 'flock-ca' : 'none',
    node: nodeNameOf(o.config),
    ca: caPem ? describeCert(caPem) : null,
    cert: certPem ? describeCert(certPem) : null,
    postgresFiles: existsSync(l.pgCert),
  }
}

/**
 * Writes the copies Postgres reads (<state>/tls/postgres/, owned by the Postgres OS user,
 * 0700/0600). Idempotent; called at kernel boot and after a rotation.
 */
export async function writePostgresTls(stateRoot: string, tls: NodeTls, runAs: OsUser | undefined): Promise<void> {
  const l = tlsLayout(stateRoot)
  await fsp.mkdir(l.dir, { recursive: true, mode: 0o755 })
  await fsp.mkdir(l.pgDir, { recursive: true, mode: 0o700 })
  await fsp.chmod(l.pgDir, 0o700)
  const owner = runAs ? { uid: runAs.uid, gid: runAs.gid } : {}
  if (runAs) await fsp.chown(l.pgDir, runAs.uid, runAs.gid)
  await writeFileAtomic(l.pgCa, tls.caPem, { mode: 0o644, ...owner })
  await writeFileAtomic(l.pgCert, tls.certPem, { mode: 0o644, ...owner })
  await writeFileAtomic(l.pgKey, tls.keyPem, { mode: 0o600, ...owner })
}

/** True once Postgres' copies exist: instances then run with ssl = on. */
export function postgresTlsReady(stateRoot: string): boolean {
  const l = tlsLayout(stateRoot)
  return existsSync(l.pgCert) && existsSync(l.pgKey) && existsSync(l.pgCa)
}
