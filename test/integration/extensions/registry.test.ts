import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import pino from 'pino'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import type { KernelServices } from '../../../src/kernel/services.js'
import { ExtensionManager } from '../../../src/extensions/manager.js'
import { tempDir } from '../../helpers/tmp.js'

describe('extension registry', () => {
  it('a damaged registry.json starts no extension and never fails the kernel boot; status says why', async () => {
    const t = tempDir('mf-extreg-')
    try {
      mkdirSync(path.join(t.dir, 'extensions'))
      writeFileSync(path.join(t.dir, 'extensions/registry.json'), '{"version":1,"extensions":[{"name":')
      const k = { layout: { root: t.dir } } as unknown as KernelServices
      const m = new ExtensionManager({ k, serve: async () => { throw new Error('no extension should start') }, routeIds: async () => [], log: pino({ level: 'silent' }), audit: { append: async () => undefined }, events: { publish: () => true, subscribe: () => () => undefined }, metrics: new Registry() })
      await m.start()
      expect(m.health()).toMatchObject({ live: true, ready: true, detail: expect.stringMatching(/no extension started: cannot read .*registry\.json/) })
    } finally {
      t.cleanup()
    }
  })
})
