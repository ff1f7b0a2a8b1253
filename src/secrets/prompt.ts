import { SECRET_NO_VALUE } from './errors.js'

/**
 * Where `secrets set` gets a value without it landing in shell history: all of stdin (one
 * trailing newline dropped), or a prompt on the terminal that does not echo.
 */
export async function readAllStdin(stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer))
  const text = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')
  if (text === '') throw SECRET_NO_VALUE()
  return text
}

export function promptHidden(question: string, stdin: NodeJS.ReadStream = process.stdin, out: NodeJS.WriteStream = process.stderr): Promise<string> {
  return new Promise((resolve, reject) => {
    out.write(question)
    stdin.setRawMode?.(true)
    stdin.resume()
    stdin.setEncoding('utf8')
    let value = ''
    const done = (err?: Error) => {
      stdin.setRawMode?.(false)
      stdin.pause()
      stdin.off('data', onData)
      out.write('\n')
      if (err) reject(err)
      else if (value === '') reject(SECRET_NO_VALUE())
      else resolve(value)
    }
    const onData = (s: string) => {
      for (const ch of s) {
        if (ch === '\r' || ch === '\n') return done()
        if (ch === '\u0003') return done(SECRET_NO_VALUE())
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1)
        else if (ch >= ' ') value += ch
      }
    }
    stdin.on('data', onData)
  })
}
