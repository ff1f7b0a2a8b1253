/**
 * Awaited hooks around a change of primary, for kernel parts that route clients to the
 * primary (the pooler). Events on the bus are fire-and-forget; these are awaited, because a
 * pooler must have paused its clients BEFORE the old primary stops, and must point at the new
 * primary as soon as it is promoted.
 *
 *   beforeSwitchover   awaited before a planned switchover stops the old primary;
 *   primaryChanged     awaited once the new primary accepts writes (switchover or failover);
 *   afterSwitchover    awaited when a planned switchover ends, whether it succeeded or not.
 *
 * A hook that throws is logged by the caller and never fails the switchover or failover.
 */
export interface PrimaryTarget {
  name: string
  host: string
  port: number
}

export interface PrimaryChangeHook {
  beforeSwitchover?(from: PrimaryTarget, to: PrimaryTarget): Promise<void>
  primaryChanged?(to: PrimaryTarget, how: { planned: boolean; from: string }): Promise<void>
  afterSwitchover?(ok: boolean): Promise<void>
}

type HookName = keyof PrimaryChangeHook

/**
 * The hooks of one kernel (the daemon makes one per kernel and hands it to the replication
 * manager and the pooler; several kernels in one process keep theirs apart).
 */
export class PrimaryHooks {
  private readonly hooks = new Set<PrimaryChangeHook>()

  /** Registers a hook; the returned function removes it. */
  register(h: PrimaryChangeHook): () => void {
    this.hooks.add(h)
    return () => void this.hooks.delete(h)
  }

  /** Runs every registered hook of that name in turn; failures go to `onError`, never up. */
  async run<N extends HookName>(name: N, args: Parameters<NonNullable<PrimaryChangeHook[N]>>, onError: (err: Error) => void): Promise<void> {
    for (const h of [...this.hooks]) {
      const fn = h[name] as ((...a: unknown[]) => Promise<void>) | undefined
      if (!fn) continue
      try {
        await fn.apply(h, args as unknown[])
      } catch (err) {
        onError(err as Error)
      }
    }
  }
}
