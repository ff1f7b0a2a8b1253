// Clients for the multi-host chaos tests, run inside a network namespace (`ip netns exec`):
//   writer HOST:PORT,…   inserts 1, 2, 3 … into acks, printing {"ack":n} once a commit returns;
//                        moves to the next host on any error (the primary moved).
//   probe HOST:PORT       prints {"t":ms,"p":1|0|-1} every ~20 ms: primary, in recovery, unreachable.
//   sql HOST:PORT QUERY   prints the rows as JSON.
// The superuser password comes from PGPASSWORD.
import pg from 'pg'

const [mode, targets, query] = process.argv.slice(2)
const hosts = targets.split(',').map((s) => {
  const [host, port] = s.split(':')
  return { host, port: Number(port) }
})
const cfg = (h) => ({ host: h.host, port: h.port, user: 'postgres', password: process.env.PGPASSWORD, database: 'postgres', connectionTimeoutMillis: 1000, query_timeout: 2000 })
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function connect(h) {
  const c = new pg.Client(cfg(h))
  c.on('error', () => undefined)
  await c.connect()
  return c
}

if (mode === 'sql') {
  const c = await connect(hosts[0])
  const r = await c.query(query)
  out(r.rows)
  await c.end()
} else if (mode === 'writer') {
  let n = Number(query ?? '0')
  let i = 0
  let c
  for (;;) {
    try {
      c ??= await connect(hosts[i])
      n++
      await c.query('insert into acks (id) values ($1)', [n])
      out({ ack: n, host: hosts[i].host, t: Date.now() })
    } catch (err) {
      out({ err: String(err.message).slice(0, 100), host: hosts[i].host, t: Date.now() })
      c?.end().catch(() => undefined)
      c = undefined
      i = (i + 1) % hosts.length
      await sleep(20)
    }
  }
} else if (mode === 'probe') {
  let c
  for (;;) {
    let p = -1
    try {
      c ??= await connect(hosts[0])
      const r = await c.query('select pg_is_in_recovery() as r')
      p = r.rows[0].r ? 0 : 1
    } catch {
      c?.end().catch(() => undefined)
      c = undefined
    }
    out({ t: Date.now(), p })
    await sleep(20)
  }
}
