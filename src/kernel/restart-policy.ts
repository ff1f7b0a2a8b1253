/**
 * Restart policy as a pure function (after containerd): given the policy, how the component
 * ended and its recent restart times, decide whether to restart and after what delay.
 * Time is passed in, so tests move the clock instead of sleeping.
 */
export interface RestartPolicy {
  policy: 'never' | 'on-failure' | 'always'
  /** First backoff; doubles each consecutive restart up to maxBackoffMs. */
  initialBackoffMs?: number
  maxBackoffMs?: number
  /** At most this many restarts within windowMs, then the component is `failed`. */
  maxRestarts?: number
  windowMs?: number
}

export const DEFAULT_RESTART: Required<RestartPolicy> = {
  policy: 'on-failure',
  initialBackoffMs: 200,
  maxBackoffMs: 10_000,
  maxRestarts: 5,
  windowMs: 60_000,
}

export type RestartDecision =
  | { action: 'restart'; delayMs: number; attempt: number; reason: string }
  | { action: 'give-up'; reason: string }
  | { action: 'stay-stopped'; reason: string }

export function decideRestart(
  policy: RestartPolicy,
  exit: { failed: boolean },
  recentRestarts: number[],
  now: number,
): RestartDecision {
  const p = { ...DEFAULT_RESTART, ...policy }
  if (p.policy === 'never') return { action: 'stay-stopped', reason: 'restart policy is never' }
  if (p.policy === 'on-failure' && !exit.failed) return { action: 'stay-stopped', reason: 'exited cleanly' }
  const inWindow = recentRestarts.filter((t) => now - t < p.windowMs)
  if (inWindow.length >= p.maxRestarts) {
    return {
      action: 'give-up',
      reason: `restarted ${inWindow.length} times within ${Math.round(p.windowMs / 1000)} s (max ${p.maxRestarts})`,
    }
  }
  const attempt = inWindow.length + 1
  const delayMs = Math.min(p.maxBackoffMs, p.initialBackoffMs * 2 ** (attempt - 1))
  return { action: 'restart', delayMs, attempt, reason: `attempt ${attempt} of ${p.maxRestarts} in the window` }
}
