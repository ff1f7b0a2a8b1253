import { accessSync, constants, realpathSync } from 'node:fs'
import path from 'node:path'

/**
 * How the user ran the CLI, so that every command MagFlock prints (hints, "connect with"
 * lines) pastes as printed in the same shell: `./magflock` (the repo-local launcher, which
 * passes its $0 in MAGFLOCK_INVOKED_AS), `npx magflock`, `node bin/run.js`, or plain
 * `magflock` when that name on PATH is this very CLI.
 */
export interface InvocationSource {
  env: NodeJS.ProcessEnv
  argv: string[]
  argv0: string
  /** PATH lookup of a command name; undefined when not found. */
  which?: (name: string) => string | undefined
}

export function invokedAs(src: InvocationSource = { env: process.env, argv: process.argv, argv0: process.argv0 }): string {
  const which = src.which ?? ((n: string) => whichOnPath(n, src.env.PATH))
  const sameAsOnPath = (file: string) => {
    const found = which('magflock')
    return found !== undefined && realpathOr(found) === realpathOr(file)
  }
  const launcher = src.env.MAGFLOCK_INVOKED_AS
  if (launcher) return sameAsOnPath(launcher) ? 'magflock' : shellWord(launcher)
  // npx / npm exec set npm_command=exec and the command they run in the environment (which a
  // grandchild inherits too: only when the command is magflock itself was it npx magflock).
  if (src.env.npm_command === 'exec' && /^'?magflock(?:'|\s|$)/.test(src.env.npm_lifecycle_script ?? '')) return 'npx magflock'
  const script = src.argv[1]
  if (!script) return 'magflock'
  if (sameAsOnPath(script)) return 'magflock'
  if (path.basename(script) === 'magflock') return shellWord(script)
  const rel = path.relative(process.cwd(), script)
  const shown = rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : script
  return `${shellWord(src.argv0 || 'node')} ${shellWord(shown)}`
}

let cached: string | undefined
/** invokedAs() of this process, computed once. */
export function cliName(): string {
  cached ??= invokedAs()
  return cached
}

/**
 * Rewrites `magflock <command>` in human output to the way the user invoked the CLI.
 * Only the names in `commands` (first words of command ids: up, db, secrets, …) count, so
 * prose such as "magflock.yaml" stays as it is.
 */
export function localizeCommands(text: string, cli: string, commands: ReadonlySet<string>): string {
  if (cli === 'magflock' || !text.includes('magflock ')) return text
  return text.replace(/(^|[\s`'"(=])magflock (?=([a-z][a-z-]*))/g, (whole, lead: string, _w, offset: number, all: string) => {
    const word = /^[a-z][a-z-]*/.exec(all.slice(offset + whole.length))?.[0] ?? ''
    return commands.has(word) ? `${lead}${cli} ` : whole
  })
}

function realpathOr(p: string): string {
  try {
    return realpathSync(p)
  } catch {
    return p
  }
}

export function whichOnPath(name: string, PATH: string | undefined): string | undefined {
  for (const dir of (PATH ?? '').split(path.delimiter)) {
    if (!dir) continue
    const p = path.join(dir, name)
    try {
      accessSync(p, constants.X_OK)
      return p
    } catch {
      // next
    }
  }
  return undefined
}

/** A word the shell reads back as itself (quoted only when it must be). */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`
}
