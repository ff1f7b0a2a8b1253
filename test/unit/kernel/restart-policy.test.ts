import { describe, expect, it } from 'vitest'
import { decideRestart } from '../../../src/kernel/restart-policy.js'

describe('decideRestart', () => {
  const policy = { policy: 'on-failure' as const, initialBackoffMs: 100, maxBackoffMs: 1_000, maxRestarts: 3, windowMs: 10_000 }

  it('restarts a failed component with exponential backoff', () => {
    expect(decideRestart(policy, { failed: true }, [], 0)).toMatchObject({ action: 'restart', delayMs: 100, attempt: 1 })
    expect(decideRestart(policy, { failed: true }, [0], 1)).toMatchObject({ action: 'restart', delayMs: 200, attempt: 2 })
    expect(decideRestart(policy, { failed: true }, [0, 1], 2)).toMatchObject({ action: 'restart', delayMs: 400, attempt: 3 })
  })

  it('caps the backoff at maxBackoffMs', () => {
    const p = { ...policy, maxRestarts: 10 }
    const d = decideRestart(p, { failed: true }, [0, 1, 2, 3, 4, 5], 6)
    expect(d).toMatchObject({ action: 'restart', delayMs: 1_000 })
  })

  it('gives up after maxRestarts within the window', () => {
    expect(decideRestart(policy, { failed: true }, [0, 1, 2], 3).action).toBe('give-up')
  })

  it('forgets restarts that left the window', () => {
    expect(decideRestart(policy, { failed: true }, [0, 1, 2], 10_002 + 1)).toMatchObject({ action: 'restart', attempt: 1 })
  })

  it('never restarts under policy never', () => {
    expect(decideRestart({ policy: 'never' }, { failed: true }, [], 0).action).toBe('stay-stopped')
  })

  it('on-failure leaves a clean exit stopped; always restarts it', () => {
    expect(decideRestart(policy, { failed: false }, [], 0).action).toBe('stay-stopped')
    expect(decideRestart({ ...policy, policy: 'always' }, { failed: false }, [], 0).action).toBe('restart')
  })
})
