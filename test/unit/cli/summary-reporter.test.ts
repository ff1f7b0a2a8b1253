import { execa } from 'execa'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from '../../helpers/cli.js'

/**
 * The suite's closing line counts what was collected: a test whose beforeAll failed and a
 * file that failed to collect are failures, not silently missing or "skipped".
 */
describe('summary reporter (closing line)', () => {
  it('counts hook-skipped tests and uncollectable files as failed, and reports collected vs to run', async () => {
    const r = await execa(path.join(ROOT, 'node_modules/.bin/vitest'), ['run', '--config', 'test/helpers/reporter-fixtures/vitest.config.ts'], {
      cwd: ROOT,
      reject: false,
      env: { NO_COLOR: '1' },
    })
    expect(r.exitCode).not.toBe(0)
    const line = String(r.stdout).split('\n').find((l) => l.startsWith('Tests: '))
    // 1 passed; failed: 1 assertion + 2 tests of the failing hook + 1 file that failed to collect.
    expect(line).toBe('Tests: 1 passed, 4 failed, 2 skipped; 6 collected, 4 to run (as `vitest list` counts); 2 did not run; 1 file failed to collect')
  })
})
