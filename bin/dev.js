#!/usr/bin/env node
// Development entry: runs the TypeScript sources through the compiled dist (build first).
import { execute } from '@oclif/core'
await execute({ development: true, dir: import.meta.url })
