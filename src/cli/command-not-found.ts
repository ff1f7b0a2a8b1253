import type { Hook } from '@oclif/core'
import { USAGE } from '../errors/index.js'
import { suggest } from '../config/keys.js'
import { renderError } from './base-command.js'

/**
 * oclif's `command_not_found` hook: an unknown command (`magflock stauts`) is an E_USAGE
 * error like any other usage mistake, in the same envelope under --json, exit 2, with the
 * closest command as "did you mean". Without this hook oclif prints its own raw error.
 */
const hook: Hook.CommandNotFound = async function (opts) {
  const sep = this.config.topicSeparator ?? ' '
  const show = (id: string) => id.replaceAll(':', sep)
  const ids = this.config.commands.filter((c) => !c.hidden).map((c) => c.id)
  const typed = opts.id
  const parts = typed.split(':')
  // `magflock status extra`: oclif joins the words into one id; the command is the known prefix.
  let known: string | undefined
  for (let i = parts.length - 1; i > 0; i--) {
    const prefix = parts.slice(0, i).join(':')
    if (ids.includes(prefix)) {
      known = prefix
      break
    }
  }
  const bin = this.config.bin
  let err
  if (typed.startsWith('-')) {
    // `magflock --bogus`: a flag where a command should be.
    err = USAGE({ message: `Nonexistent flag: ${typed}`, hint: `\`${bin} --help\` lists the commands; \`${bin} COMMAND --help\` shows a command's flags.` })
  } else if (known) {
    const extra = parts.slice(known.split(':').length).join(' ')
    err = USAGE({ message: `Unexpected argument: ${extra}`, command: show(known) })
  } else {
    // Topics too (`magflock confg` → config), those with commands under them.
    const topics = this.config.topics.map((t) => t.name).filter((t) => !ids.includes(t) && ids.some((id) => id.startsWith(`${t}:`)))
    const guess = suggest(typed, [...ids, ...topics])
    const topic = parts.length > 1 ? parts.slice(0, -1).join(':') : undefined
    err = USAGE({
      message: `"${show(typed)}" is not a ${bin} command.${guess ? ` Did you mean "${show(guess)}"?` : ''}`,
      hint: guess
        ? topics.includes(guess)
          ? `\`${bin} ${show(guess)} --help\` lists the commands of ${show(guess)}.`
          : `Run \`${bin} ${show(guess)}\`; \`${bin} --help\` lists every command.`
        : topic && this.config.findTopic(topic)
          ? `\`${bin} ${show(topic)} --help\` lists the commands of ${show(topic)}.`
          : `\`${bin} --help\` lists every command.`,
    })
  }
  process.exitCode = err.exitCode
  if ((opts.argv ?? []).includes('--json')) process.stdout.write(JSON.stringify({ ok: false, error: err.toWire() }, null, 2) + '\n')
  else process.stderr.write(renderError(err))
}

export default hook
