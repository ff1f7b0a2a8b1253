import { Command, Errors, Flags, type Interfaces } from '@oclif/core'
import { INTERNAL, USAGE, isMagflockError, type MagflockError } from '../errors/index.js'
import { resolveStateDir, stateLayout, type StateLayout } from '../platform/paths.js'
import { KernelClient } from '../client/index.js'
import { remoteTransport } from '../tls/remote.js'
import { stateAccessError } from '../client/errors.js'
import { redactor } from '../secrets/redact.js'
import { cliName, localizeCommands } from './invocation.js'

/**
 * The only place that knows about output envelopes, exit codes and error rendering.
 *
 * `--json` output is always one of:
 *   { "ok": true,  "data": <the command's typed result> }
 *   { "ok": false, "error": { "code": "E_…", "class": "…", "message": "…", "hint": "…" } }
 * on stdout, with the exit code from EXIT_CODES (0 on success). Human output goes to stdout,
 * errors to stderr as "Error [E_CODE]: message" and "Hint: …".
 */
export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof MagflockCommand)['baseFlags'] & T['flags']>

export abstract class MagflockCommand<T> extends Command {
  static override enableJsonFlag = true

  static override baseFlags = {
    'state-dir': Flags.string({
      summary: 'State directory of the flock.',
      description: 'Order: this flag, MAGFLOCK_STATE_DIR, the defaultStateDir user preference (magflock prefs set), ./.magflock.',
      helpGroup: 'GLOBAL',
    }),
    token: Flags.string({
      summary: 'Control API token (default: <state>/admin.token). Also MAGFLOCK_TOKEN.',
      helpGroup: 'GLOBAL',
    }),
    api: Flags.string({
      summary: 'ADDRESS:PORT of a remote kernel (its api.listen), reached over mutual TLS. Also MAGFLOCK_API.',
      helpGroup: 'GLOBAL',
    }),
    'tls-dir': Flags.string({
      summary: 'Directory with ca.crt, client.crt, client.key for --api (`magflock tls client`). Also MAGFLOCK_TLS_DIR.',
      helpGroup: 'GLOBAL',
    }),
  }

  /**
   * Output is scrubbed of every secret value this process has read from the vault, so a
   * service that slips one into a message cannot leak it. Only a command whose purpose is to
   * show a secret on request (`secrets get --reveal`) turns this off.
   */
  static allowSecretOutput = false

  abstract override run(): Promise<T>

  private scrub(text: string): string {
    return (this.constructor as typeof MagflockCommand).allowSecretOutput ? text : redactor.scrub(text)
  }

  /** How the user invoked the CLI (`./magflock`, `npx magflock`, …): printed commands use it. */
  protected get cli(): string {
    return cliName()
  }

  private _commandWords: Set<string> | undefined
  /** `magflock <command>` in human output, as the user invoked it (see src/cli/invocation.ts). */
  protected localize(text: string): string {
    if (this.cli === 'magflock') return text
    this._commandWords ??= new Set(this.config.commandIDs.map((id) => id.split(':')[0]!))
    return localizeCommands(text, this.cli, this._commandWords)
  }

  override log(message = '', ...args: unknown[]): void {
    super.log(this.localize(this.scrub(message)), ...args)
  }

  private _stateDirFlag: string | undefined
  private _tokenFlag: string | undefined
  private _apiFlag: string | undefined
  private _tlsDirFlag: string | undefined

  protected layout(): StateLayout {
    return stateLayout(resolveStateDir(this._stateDirFlag))
  }

  /** Typed control-API client for this flock. */
  protected kernel(): KernelClient {
    const api = this._apiFlag ?? process.env.MAGFLOCK_API
    const remote = api ? remoteTransport(api, this._tlsDirFlag ?? process.env.MAGFLOCK_TLS_DIR) : undefined
    return new KernelClient(this.layout(), { token: this._tokenFlag ?? process.env.MAGFLOCK_TOKEN, remote })
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override async parse<F extends Record<string, any>, B extends Record<string, any>, A extends Record<string, any>>(
    options?: Interfaces.Input<F, B, A>,
    argv?: string[],
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    const out = await super.parse(options, argv)
    const f = out.flags as Record<string, unknown>
    this._stateDirFlag = f['state-dir'] as string | undefined
    this._tokenFlag = f.token as string | undefined
    this._apiFlag = f.api as string | undefined
    this._tlsDirFlag = f['tls-dir'] as string | undefined
    return out
  }

  protected override toSuccessJson(result: unknown): unknown {
    return { ok: true, data: result }
  }

  protected override logJson(json: unknown): void {
    process.stdout.write(this.scrub(JSON.stringify(json, null, 2)) + '\n')
  }

  /** Progress lines for long operations: plain lines on stderr, silent under --json. */
  protected progressLine(msg: string): void {
    if (!this.jsonEnabled()) process.stderr.write(msg + '\n')
  }

  protected override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<void> {
    const e = toMagflockError(err, this.id?.replaceAll(':', ' '))
    process.exitCode = e.exitCode
    if (this.jsonEnabled()) {
      this.logJson({ ok: false, error: e.toWire() })
      return
    }
    process.stderr.write(this.localize(this.scrub(renderError(e))))
  }
}

export function renderError(e: MagflockError): string {
  let out = `Error [${e.code}]: ${e.message}\n`
  if (e.hint) out += `Hint: ${e.hint}\n`
  return out
}

/** Anything thrown becomes a MagflockError; oclif's parse errors become E_USAGE (exit 2). */
export function toMagflockError(err: unknown, command?: string): MagflockError {
  if (isMagflockError(err)) return err
  if (err instanceof Errors.CLIError || (err as { oclif?: unknown })?.oclif) {
    return USAGE({ message: usageMessage((err as Error).message), command }, { cause: err })
  }
  // An unreadable or unwritable state dir is the operator's to fix, not an internal error.
  const access = stateAccessError(err)
  if (access) return access
  return INTERNAL({ message: err instanceof Error ? err.message : String(err) }, { cause: err })
}

/**
 * oclif's parse error as plain text, whole: "Missing 1 required arg:" is followed by the
 * argument's name and description on the next lines, which are the useful part. oclif's own
 * "See more help with --help" line is dropped (the hint says it).
 */
export function usageMessage(raw: string): string {
  const lines = stripAnsi(raw)
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() !== '' && !/^See more help with --help$/.test(l.trim()))
  return lines.join('\n') || 'invalid usage'
}

/** oclif colours some parse errors; the envelope carries plain text. */
function stripAnsi(s: string): string {
  const ESC = String.fromCharCode(27)
  return s.split(ESC).map((part, i) => (i === 0 ? part : part.replace(/^\[[0-9;]*m/, ''))).join('')
}
