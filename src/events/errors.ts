import { defineError } from '../errors/index.js'

/** Error catalog for the event stream and extension hooks (area "events"). */

export const EVENT_CURSOR_AHEAD = defineError<{ after: number; lastSeq: number }>({
  code: 'E_EVENT_CURSOR_AHEAD',
  class: 'invalid_argument',
  area: 'events',
  message: (a) => `Cursor after=${a.after} is newer than the newest event (seq ${a.lastSeq}): it belongs to another state directory or a journal that was reset.`,
  hint: () => 'Resume without --after (all kept events) or with --after 0, then keep the seq of the last line you processed.',
})

export const EVENTS_NOT_GRANTED = defineError<{ extension: string }>({
  code: 'E_EVENTS_NOT_GRANTED',
  class: 'permission_denied',
  area: 'events',
  message: (a) => `Extension "${a.extension}" was granted no event pattern to subscribe to.`,
  hint: (a) => `An operator grants one with \`magflock ext grant ${a.extension} events:subscribe:<pattern>\`.`,
})

export const HOOK_NOT_GRANTED = defineError<{ extension: string; capability: string }>({
  code: 'E_HOOK_NOT_GRANTED',
  class: 'permission_denied',
  area: 'events',
  message: (a) => `Extension "${a.extension}" may not register this hook: it lacks the capability ${a.capability}.`,
  hint: (a) => `An operator grants it with \`magflock ext grant ${a.extension} ${a.capability}\`.`,
})

export const HOOK_OBSERVE_ONLY = defineError<{ point: string }>({
  code: 'E_HOOK_OBSERVE_ONLY',
  class: 'invalid_argument',
  area: 'events',
  message: (a) => `Hook point ${a.point} is observe-only: the failover path never waits for an extension, so it cannot be vetoed.`,
  hint: (a) => `Register it with {"point":"${a.point}","effect":"observe"}.`,
})

export const HOOK_INVOCATION_NOT_FOUND = defineError<{ invocationId: string }>({
  code: 'E_HOOK_INVOCATION_NOT_FOUND',
  class: 'not_found',
  area: 'events',
  message: (a) => `No pending hook invocation "${a.invocationId}" of this extension: it was answered already, timed out, or belongs to another extension.`,
  hint: () => 'Answer each hook.invoke event once, within its timeoutMs; a late answer is ignored and the hook counts as skipped.',
})

export const HOOK_VETOED = defineError<{ point: string; extension: string; reason: string }>({
  code: 'E_HOOK_VETOED',
  class: 'failed_precondition',
  area: 'events',
  message: (a) => `Extension "${a.extension}" vetoed ${a.point}: ${a.reason || 'no reason given'}.`,
  hint: (a) => `Fix what the extension objects to, or disable it (\`magflock ext disable ${a.extension}\`) and try again.`,
})
