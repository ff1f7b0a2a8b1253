import { defineConfig } from 'vitest/config'

// Integration, e2e and chaos tests start real Postgres instances; on a 2-core machine two
// files at a time keeps them from starving each other while unit tests stay fast.
// Unit tests share their workers (isolate: false): a fresh process per file cost more than
// the tests themselves. Tests against real Postgres keep a process per file, since an
// in-process kernel leaves module state (the failover monitor, event types) behind.
// The initdb template for test databases (test/helpers/global-setup.ts) is made only when
// such tests run.
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
    pool: 'forks',
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'], isolate: false } },
      { extends: true, test: { name: 'postgres', include: ['test/{integration,e2e,chaos,security}/**/*.test.ts'], globalSetup: ['test/helpers/global-setup.ts'] } },
    ],
  },
})
