import http from 'node:http'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { tokenCreate } from '../../src/api/core.js'
import { ROLES, type Role } from '../../src/api/route.js'
import { KernelClient } from '../../src/client/index.js'
import { startKernel, type RunningKernel } from '../../src/daemon/boot.js'
import { freePort } from '../../src/platform/ports.js'
import { stateLayout, type StateLayout } from '../../src/platform/paths.js'
import { isMagflockError, type MagflockError } from '../../src/errors/index.js'
import { tempDir } from '../helpers/tmp.js'

/**
 * A kernel (in this process, real Postgres, the real control socket) and one real token per
 * role, for the security suite. Requests go over the socket as raw HTTP so a test controls
 * every header and parameter an attacker would.
 */
export interface SecurityFlock {
  projectDir: string
  stateDir: string
  layout: StateLayout
  kernel: RunningKernel
  admin: KernelClient
  tokens: Record<Role, string>
  request(role: Role | null, req: RawRequest): Promise<RawResponse>
  stop(): Promise<void>
}

export interface RawRequest {
  method?: string
  path: string
  headers?: Record<string, string>
  body?: unknown
}

export interface RawResponse {
  status: number
  /** The JSON body, or for a streaming route its last NDJSON event. */
  body: { error?: { code: string; message: string; hint?: string }; type?: string; data?: unknown; [k: string]: unknown }
  text: string
}

process.env.MAGFLOCK_MASTER_KEY ??= Buffer.alloc(32, 11).toString('base64')

export function rawRequest(socketPath: string, token: string | null, req: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const body = req.body === undefined ? undefined : typeof req.body === 'string' ? req.body : JSON.stringify(req.body)
    const headers: Record<string, string> = { host: 'magflock', ...(token ? { authorization: `Bearer ${token}` } : {}), ...(req.headers ?? {}) }
    if (body !== undefined) headers['content-type'] = 'application/json'
    const r = http.request({ socketPath, method: req.method ?? 'GET', path: req.path, headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => {
        const lines = text.trim().split('\n').filter(Boolean)
        let parsed: RawResponse['body']
        try {
          parsed = lines.length ? (JSON.parse(lines[lines.length - 1]!) as RawResponse['body']) : {}
        } catch {
          parsed = {}
        }
        // A streaming route's error arrives as its last event.
        resolve({ status: res.statusCode ?? 0, body: parsed, text })
      })
    })
    r.on('error', reject)
    if (body !== undefined) r.write(body)
    r.end()
  })
}

/** The error code of a response, plain or streamed. */
export function codeOf(r: RawResponse): string | undefined {
  return r.body.error?.code
}

export async function startSecurityFlock(opts: { yaml?: string; migrations?: Record<string, string> } = {}): Promise<SecurityFlock> {
  const t = tempDir('mf-sec-')
  const pgPort = await freePort()
  const metricsPort = await freePort()
  writeFileSync(
    path.join(t.dir, 'magflock.yaml'),
    `postgres:\n  port: ${pgPort}\n  settings:\n    fsync: "off"\nmetrics:\n  port: ${metricsPort}\nreplication:\n  basePort: ${await freePort()}\n${opts.yaml ?? ''}`,
  )
  mkdirSync(path.join(t.dir, 'migrations'), { recursive: true })
  for (const [name, text] of Object.entries(opts.migrations ?? {})) writeFileSync(path.join(t.dir, 'migrations', name), text)
  const stateDir = path.join(t.dir, '.magflock')
  const kernel = await startKernel({ stateDir, projectDir: t.dir })
  const layout = stateLayout(stateDir)
  const admin = new KernelClient(layout)
  const tokens = { admin: admin.token() } as Record<Role, string>
  for (const role of ROLES) {
    if (role === 'admin') continue
    tokens[role] = (await admin.call(tokenCreate, { role, name: `sec-${role}` })).token
  }
  return {
    projectDir: t.dir,
    stateDir,
    layout,
    kernel,
    admin,
    tokens,
    request: (role, req) => rawRequest(layout.socket, role ? tokens[role] : null, req),
    async stop() {
      await kernel.shutdown({ keepPostgres: false, reason: 'test' }).catch(() => undefined)
      t.cleanup()
    },
  }
}

/** The MagflockError a promise rejects with; fails the test when it resolves or throws something else. */
export async function errorOf(p: Promise<unknown>): Promise<MagflockError> {
  try {
    await p
  } catch (err) {
    if (isMagflockError(err)) return err
    throw err
  }
  throw new Error('expected a MagflockError, but the call succeeded')
}
