import type { Reporter, TestCase, TestModule } from 'vitest/node'

/**
 * Prints one plain closing line after vitest's own summary, that any CI reads:
 *
 *   Tests: 440 passed, 0 failed, 5 skipped; 445 collected, 440 to run (as `vitest list` counts)
 *
 * It counts what was collected, so a test that did not run does not quietly vanish:
 *  - a test meant to run that did not (its beforeAll failed, its worker died) is failed;
 *  - a file that failed to collect (an import or top-level error) counts as one failed test,
 *    and the line says how many files did;
 *  - only tests marked skip/todo (or filtered out with -t) count as skipped.
 */
export interface SummaryCounts {
  passed: number
  failed: number
  skipped: number
  collected: number
  toRun: number
  notRun: number
  filesFailedToCollect: number
}

export function summarize(modules: ReadonlyArray<TestModule>, unhandled: number): SummaryCounts {
  const c: SummaryCounts = { passed: 0, failed: 0, skipped: 0, collected: 0, toRun: 0, notRun: 0, filesFailedToCollect: 0 }
  for (const m of modules) {
    const tests: TestCase[] = [...m.children.allTests()]
    if (tests.length === 0 && m.state() === 'failed') {
      c.filesFailedToCollect++
      c.failed++
      continue
    }
    for (const t of tests) {
      c.collected++
      const meant = t.options.mode === 'run' || t.options.mode === 'only'
      if (meant) c.toRun++
      const s = t.result().state
      if (s === 'passed') c.passed++
      else if (s === 'failed') c.failed++
      else if (meant) {
        // Meant to run but did not: a failed hook, a crashed worker, an interrupted run.
        c.notRun++
        c.failed++
      } else c.skipped++
    }
  }
  c.failed += unhandled
  return c
}

export function closingLine(c: SummaryCounts): string {
  let line = `Tests: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped; ${c.collected} collected, ${c.toRun} to run (as \`vitest list\` counts)`
  if (c.notRun) line += `; ${c.notRun} did not run`
  if (c.filesFailedToCollect) line += `; ${c.filesFailedToCollect} file${c.filesFailedToCollect === 1 ? '' : 's'} failed to collect`
  return line
}

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandled: ReadonlyArray<unknown>): void {
    process.stdout.write(`\n${closingLine(summarize(modules, unhandled.length))}\n`)
  }
}
