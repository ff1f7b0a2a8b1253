import { readFileSync } from 'node:fs'

/** The package version, read once (the kernel reports it; the CLI checks for skew). */
export const VERSION: string = (() => {
  try {
    const pj = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }
    return pj.version ?? '0.0.0'
  } catch {
    return '0.0.0'
  }
})()
