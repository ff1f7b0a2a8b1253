import { mergeBenchmarks } from './lib.mjs'
mergeBenchmarks()
