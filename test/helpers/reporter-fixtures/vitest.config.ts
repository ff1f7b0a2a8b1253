import { defineConfig } from 'vitest/config'

// Runs only the reporter fixtures, with the summary reporter (see test/unit/cli/summary-reporter.test.ts).
export default defineConfig({
  test: {
    include: ['test/helpers/reporter-fixtures/*.fixture.ts'],
    reporters: ['./test/helpers/summary-reporter.ts'],
    pool: 'forks',
  },
})
