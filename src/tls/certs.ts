import { X509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto'
import { isIP } from 'node:net'
import type * as X509 from '@peculiar/x509'

/**
 * The flock's certificate authority and the certificates it issues, built with @peculiar/x509
 * on Node's WebCrypto (no openssl child, no hand-written ASN.1). Keys are ECDSA P-256: small,
 * fast to generate, and accepted by Postgres/OpenSSL, HAProxy and Node's TLS alike.
 *
 * Pure functions of their inputs (plus the clock and randomness): nothing here touches the
 * file system or the vault; src/tls/material.ts decides where the PEMs go.
 */
type X509Crypto = Parameters<typeof X509.cryptoProvider.set>[0]
type KeyPair = Parameters<typeof X509.X509CertificateGenerator.createSelfSigned>[0]['keys']
type SigningKey = KeyPair['privateKey']

let loaded: Promise<typeof X509> | undefined
/**
 * @peculiar/x509 (and the reflect-metadata polyfill its DI container needs) load only when a
 * certificate is issued: the kernel's boot and `tls status` parse with Node's X509Certificate.
 */
function x509Lib(): Promise<typeof X509> {
  loaded ??= (async () => {
    await import('reflect-metadata')
    // The library is CommonJS: Node's loader gives its named exports, the kernel's bundle
    // (esbuild, scripts/build-kernel.mjs) only `default` (the kernel issues certificates for
    // `node invite`).
    const mod = (await import('@peculiar/x509')) as unknown as typeof X509 & { default?: typeof X509 }
    const lib: typeof X509 = mod.cryptoProvider ? mod : (mod.default as typeof X509)
    lib.cryptoProvider.set(webcrypto as unknown as X509Crypto)
    return lib
  })()
  return loaded
}

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const
const DAY_MS = 86_400_000

export interface Pem {
  certPem: string
  keyPem: string
}

export type CertUsage = 'server' | 'client' | 'server+client'

export interface IssueInput {
  ca: Pem
  commonName: string
  /** DNS names and IP addresses; IPs go into iPAddress SANs (verify-full checks them). */
  sans: string[]
  usage: CertUsage
  days: number
  now?: Date
}

function keyPemOf(pkcs8: ArrayBuffer): string {
  const b64 = Buffer.from(pkcs8).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')
  return `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`
}

async function generateKeys(): Promise<KeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as unknown as KeyPair
}

async function importSigningKey(keyPem: string): Promise<SigningKey> {
  const der = Buffer.from(keyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64')
  return (await webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign'])) as unknown as SigningKey
}

function serial(): string {
  // Positive 128-bit serial (top bit clear), as RFC 5280 asks.
  const b = randomBytes(16)
  b[0] = (b[0] ?? 0) & 0x7f
  return b.toString('hex')
}

/** X.500 name with a CN; the value is restricted by the callers (flock and node names). */
function dn(cn: string): string {
  return `CN=${cn.replace(/[,+="<>#;\\]/g, '_')}, O=MagFlock`
}

/** A self-signed CA for one flock (pathLen 0: it signs node and client certs only). */
export async function createCa(flock: string, days: number, now = new Date()): Promise<Pem> {
  const x509 = await x509Lib()
  const keys = await generateKeys()
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: dn(`MagFlock CA ${flock}`),
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + days * DAY_MS),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  })
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as unknown as webcrypto.CryptoKey)
  return { certPem: cert.toString('pem') + '\n', keyPem: keyPemOf(pkcs8) }
}

/** A leaf certificate signed by the CA, with the SANs a verify-full client checks. */
export async function issueCert(input: IssueInput): Promise<Pem> {
  const x509 = await x509Lib()
  const now = input.now ?? new Date()
  const caCert = new x509.X509Certificate(input.ca.certPem)
  const caKey = await importSigningKey(input.ca.keyPem)
  const keys = await generateKeys()
  const usages: string[] = []
  if (input.usage !== 'client') usages.push(x509.ExtendedKeyUsage.serverAuth)
  if (input.usage !== 'server') usages.push(x509.ExtendedKeyUsage.clientAuth)
  const sans = [...new Set(input.sans)].map((s) => (isIP(s) ? { type: 'ip' as const, value: s } : { type: 'dns' as const, value: s }))
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
    new x509.ExtendedKeyUsageExtension(usages, false),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
  ]
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans, false))
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: dn(input.commonName),
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + input.days * DAY_MS),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: ALG,
    extensions,
  })
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as unknown as webcrypto.CryptoKey)
  return { certPem: cert.toString('pem') + '\n', keyPem: keyPemOf(pkcs8) }
}

export interface CertInfo {
  subject: string
  issuer: string
  serial: string
  notBefore: string
  notAfter: string
  /** Whole days until notAfter (negative once expired). */
  daysLeft: number
  sans: string[]
  fingerprint256: string
  isCa: boolean
}

/** What `tls status` and `doctor` show about one certificate (Node's X509Certificate parser). */
export function describeCert(pem: string, now = new Date()): CertInfo {
  const c = new X509Certificate(pem)
  const notAfter = new Date(c.validTo)
  return {
    subject: c.subject.replace(/\n/g, ', '),
    issuer: c.issuer.replace(/\n/g, ', '),
    serial: c.serialNumber,
    notBefore: new Date(c.validFrom).toISOString(),
    notAfter: notAfter.toISOString(),
    daysLeft: Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS),
    sans: (c.subjectAltName ?? '')
      .split(', ')
      .filter(Boolean)
      .map((s) => s.replace(/^(DNS|IP Address):/, '')),
    fingerprint256: c.fingerprint256,
    isCa: c.ca,
  }
}

/** True when `certPem` was signed by `caPem`'s key and the key pair matches. */
export function certMatches(certPem: string, keyPem: string, caPem: string): boolean {
  const c = new X509Certificate(certPem)
  const ca = new X509Certificate(caPem)
  if (!c.verify(ca.publicKey)) return false
  return c.checkPrivateKey(createPrivateKey(keyPem))
}
