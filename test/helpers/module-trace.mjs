// `node --import <this file>`: appends the URL of every module the process loads to the file
// named by MODULE_TRACE_OUT, one per line (Node's synchronous module hooks). Used to check
// what a CLI command imports, e.g. that `status` loads no zod (test/e2e/status-watch.test.ts).
import module from 'node:module'
import { appendFileSync } from 'node:fs'

const out = process.env.MODULE_TRACE_OUT
if (out) {
  module.registerHooks({
    load(url, context, nextLoad) {
      const r = nextLoad(url, context)
      appendFileSync(out, `${url}\n`)
      return r
    },
  })
}
