/**
 * TEST-ONLY fault injection for the chaos tests (test/chaos/failover-kernel-kill.test.ts):
 * a kernel started with `MAGFLOCK_FAULT=failover:<phase>` kills itself with SIGKILL when a
 * failover reaches that phase, exactly as `kill -9` of the kernel would, so the test can check
 * what the next kernel makes of a half-done failover. Only that exact variable and an exact
 * phase name trigger it; nothing else reads it, and no config key or flag sets it.
 *
 * Phases: `after-fence` (old primary fenced, nothing promoted yet) and `after-promote` (the
 * replica accepts writes, the new topology is not saved yet). `replica-add:after-start`: the
 * new replica is cloned, started and streaming, its slot exists, it is not registered yet.
 */
export type FailoverFault = 'after-fence' | 'after-promote'

export const FAULT_ENV = 'MAGFLOCK_FAULT'

export function faultPoint(phase: FailoverFault): void {
  if (process.env[FAULT_ENV] !== `failover:${phase}`) return
  process.kill(process.pid, 'SIGKILL')
}

export function addFaultPoint(phase: 'after-start'): void {
  if (process.env[FAULT_ENV] !== `replica-add:${phase}`) return
  process.kill(process.pid, 'SIGKILL')
}
