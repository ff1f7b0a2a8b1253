import { INVALID_ETCD_ENDPOINT } from './errors.js'

/** `--etcd` as a list of client URLs (http(s)://HOST:PORT, comma separated). */
export function parseEndpoints(list: string): string[] {
  const out = list.split(',').map((s) => s.trim()).filter(Boolean)
  if (out.length === 0) throw INVALID_ETCD_ENDPOINT({ endpoint: list })
  for (const e of out) {
    let u: URL
    try {
      u = new URL(e)
    } catch {
      throw INVALID_ETCD_ENDPOINT({ endpoint: e })
    }
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || !u.port || u.pathname.length > 1) throw INVALID_ETCD_ENDPOINT({ endpoint: e })
  }
  return out
}
