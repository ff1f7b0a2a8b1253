import { afterEach, describe, expect, it } from 'vitest'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { migrationSettings } from '../../../src/cli/migrations.js'
import { tempDir } from '../../helpers/tmp.js'

describe('migrationSettings', () => {
  const cwd = process.cwd()
  afterEach(() => process.chdir(cwd))

  it('takes migrations.dir and lockTimeoutSeconds from the project config when no flag is given', async () => {
    const t = tempDir()
    try {
      writeFileSync(path.join(t.dir, 'magflock.yaml'), 'migrations:\n  dir: db/migs\n  lockTimeoutSeconds: 7\n')
      process.chdir(t.dir)
      expect(await migrationSettings({})).toEqual({ dir: path.join(t.dir, 'db/migs'), lockTimeoutSeconds: 7 })
      expect(await migrationSettings({ dir: 'other', lockTimeout: 3 })).toEqual({ dir: path.join(t.dir, 'other'), lockTimeoutSeconds: 3 })
      expect((await migrationSettings({ lockTimeout: 3 })).dir).toBe(path.join(t.dir, 'db/migs'))
    } finally {
      t.cleanup()
    }
  })

  it('defaults to ./migrations and 60 s without a magflock.yaml', async () => {
    const t = tempDir()
    try {
      process.chdir(t.dir)
      expect(await migrationSettings({})).toEqual({ dir: path.join(t.dir, 'migrations'), lockTimeoutSeconds: 60 })
    } finally {
      t.cleanup()
    }
  })
})
