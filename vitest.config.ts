import { defineConfig } from 'vitest/config'

// Integration, e2e and chaos tests start real Postgres instances; on a 2-core machine two
// files at a time keeps them from starving each other while unit tests stay fast.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
    pool: 'forks',
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
  },
})
