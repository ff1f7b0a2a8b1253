import { chmodSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { childJsEvaluator } from '../../src/migrations/js-child.js'
import { loadMigrationFolder } from '../../src/migrations/files.js'
import { lookupUser } from '../../src/platform/os-user.js'
import { tempDir } from '../helpers/tmp.js'
import { errorOf } from './harness.js'

/**
 * The kernel's way to get a .js migration's SQL: a child as `nobody`. What the module prints
 * cannot pass for SQL, a hang is cut off, and a module `nobody` cannot read is named.
 */
const t = tempDir('mf-jschild-')
afterAll(() => t.cleanup())

async function fileOf(name: string, text: string, mode = 0o644) {
  writeFileSync(path.join(t.dir, name), text)
  chmodSync(path.join(t.dir, name), mode)
  const folder = await loadMigrationFolder(t.dir)
  const f = folder.files.find((x) => x.fileName === name)!
  expect(f.unevaluated).toBe(true)
  return f
}

describe('childJsEvaluator', { timeout: 30_000 }, () => {
  const evaluate = childJsEvaluator({ runAs: lookupUser('nobody'), timeoutMs: 1500 })

  it('returns generateSql() and ignores what the module prints', async () => {
    const f = await fileOf('1_ok.js', "console.log('DROP TABLE x'); module.exports.generateSql = () => `SELECT ${process.getuid()}`\n")
    expect(await evaluate(f)).toBe(`SELECT ${lookupUser('nobody').uid}`)
  })

  it('cuts off a generateSql() that never returns', async () => {
    const f = await fileOf('2_hang.js', 'module.exports.generateSql = () => { for (;;) {} }\n')
    const err = await errorOf(evaluate(f))
    expect(err.code).toBe('E_MIGRATION_FILE_INVALID')
    expect(err.message).toContain('did not finish')
  })

  it('names the OS user when it cannot read the file', async () => {
    const f = await fileOf('3_private.js', "module.exports.generateSql = () => 'SELECT 1'\n", 0o600)
    const err = await errorOf(evaluate(f))
    expect(err.code).toBe('E_MIGRATION_FILE_INVALID')
    expect(err.message).toContain('"nobody"')
  })

  it('refuses a module without generateSql() or returning a non-string', async () => {
    expect((await errorOf(evaluate(await fileOf('4_none.js', 'module.exports = {}\n')))).message).toContain('does not export a generateSql()')
    expect((await errorOf(evaluate(await fileOf('5_num.js', 'module.exports.generateSql = () => 42\n')))).message).toContain('must return a string')
  })
})
