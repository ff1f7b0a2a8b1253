import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import type { OsUser } from '../platform/os-user.js'
import { MIGRATION_FILE_INVALID } from './errors.js'
import type { JsEvaluator } from './files.js'

/**
 * How the kernel gets the SQL of a .js migration without loading user code into itself:
 * a separate `node` process, as an unprivileged OS user (`nobody`: no supplementary groups,
 * no access to the state dir, the vault or the master key), with an allow-listed
 * environment (PATH and LANG, nothing of the kernel's), cwd `/`, a deadline and an output
 * cap. The module is loaded the way postgres-migrations loads it (require, ESM through
 * require(esm)); generateSql()'s string comes back on fd 3, so whatever the module prints
 * cannot pass for SQL.
 */
export const JS_CHILD_ENV: Readonly<Record<string, string>> = { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8' }
export const JS_CHILD_TIMEOUT_MS = 30_000
const MAX_SQL_BYTES = 64 * 1024 * 1024
const SETPRIV = '/usr/bin/setpriv'

const CHILD_SCRIPT = `
const fs = require('node:fs')
const file = process.argv[1]
const reply = (v) => { fs.writeSync(3, JSON.stringify(v)); process.exit(0) }
let mod
try { mod = require('node:module').createRequire(file)(file) } catch (e) {
  reply({ error: 'it could not be loaded (' + String((e && e.message) || e).split('\\n')[0] + ')' })
}
if (!mod || typeof mod.generateSql !== 'function') reply({ error: 'it does not export a generateSql() function' })
let sql
try { sql = mod.generateSql() } catch (e) { reply({ error: 'generateSql() threw: ' + String((e && e.message) || e).split('\\n')[0] }) }
if (typeof sql !== 'string') reply({ error: 'generateSql() must return a string' })
reply({ sql })
`

export function childJsEvaluator(opts: { runAs: OsUser; nodePath?: string; timeoutMs?: number }): JsEvaluator {
  const timeoutMs = opts.timeoutMs ?? JS_CHILD_TIMEOUT_MS
  return (f) =>
    new Promise<string>((resolve, reject) => {
      const node = opts.nodePath ?? process.execPath
      const stdio: ['ignore', 'ignore', 'pipe', 'pipe'] = ['ignore', 'ignore', 'pipe', 'pipe']
      // setpriv (util-linux) drops to the user, clears supplementary groups, forbids regaining
      // privileges and makes the child die with the kernel (parent-death signal), so a
      // generateSql() that never returns cannot outlive a killed kernel. Without setpriv,
      // node's own uid/gid switch (which also clears supplementary groups).
      const child = existsSync(SETPRIV)
        ? spawn(
            SETPRIV,
            ['--reuid', String(opts.runAs.uid), '--regid', String(opts.runAs.gid), '--clear-groups', '--no-new-privs', '--pdeathsig', 'KILL', '--', node, '-e', CHILD_SCRIPT, f.path],
            { cwd: '/', env: { ...JS_CHILD_ENV }, stdio },
          )
        : spawn(node, ['-e', CHILD_SCRIPT, f.path], { cwd: '/', env: { ...JS_CHILD_ENV }, uid: opts.runAs.uid, gid: opts.runAs.gid, stdio })
      const chunks: Buffer[] = []
      let size = 0
      let stderr = ''
      let failed: string | undefined
      const timer = setTimeout(() => {
        failed = `generateSql() did not finish within ${Math.round(timeoutMs / 1000)} s`
        child.kill('SIGKILL')
      }, timeoutMs)
      const out = child.stdio[3] as NodeJS.ReadableStream
      out.on('data', (c: Buffer) => {
        size += c.length
        if (size > MAX_SQL_BYTES) {
          failed = `generateSql() returned more than ${MAX_SQL_BYTES / 1024 / 1024} MB`
          child.kill('SIGKILL')
          return
        }
        chunks.push(c)
      })
      child.stderr?.on('data', (c: Buffer) => {
        if (stderr.length < 4000) stderr += c.toString('utf8')
      })
      const fail = (reason: string, cause?: unknown) => reject(MIGRATION_FILE_INVALID({ file: f.fileName, reason }, cause ? { cause } : {}))
      child.on('error', (err) => {
        clearTimeout(timer)
        fail(`the isolated node process could not start (${err.message})`, err)
      })
      child.on('close', (code, signal) => {
        clearTimeout(timer)
        if (failed) return fail(failed)
        let reply: { sql?: unknown; error?: unknown } | undefined
        try {
          reply = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { sql?: unknown; error?: unknown }
        } catch {
          reply = undefined
        }
        if (reply && typeof reply.error === 'string') {
          const denied = /EACCES|permission denied/i.test(reply.error)
          return fail(denied ? `${reply.error}; it runs as the OS user "${opts.runAs.name}", which must be able to read it` : reply.error)
        }
        if (reply && typeof reply.sql === 'string') return resolve(reply.sql)
        const why = signal ? `signal ${signal}` : `exit code ${code}`
        fail(`its isolated node process ended (${why}) without returning SQL${stderr.trim() ? `: ${stderr.trim().split('\n')[0]}` : ''}`)
      })
    })
}
