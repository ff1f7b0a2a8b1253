import { createRequire } from 'node:module'
import type * as NodeHttp from 'node:http'

/**
 * node:http, loaded with require. An ES import of a builtin builds its ESM facade, which
 * reads every export; node:http's lazy WebSocket/fetch getters then load undici (about 50 ms
 * of CPU on every CLI call that talks to the kernel, and on every kernel start).
 */
export const http = createRequire(import.meta.url)('node:http') as typeof NodeHttp
