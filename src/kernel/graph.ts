import { COMPONENT_CYCLE, COMPONENT_DUPLICATE, COMPONENT_MISSING_DEP } from './errors.js'

/**
 * The component dependency graph (containerd-style): boot follows the graph, shutdown
 * mirrors it. The order is deterministic — among components whose dependencies are all up,
 * the one with the smallest name comes first — so two boots of the same flock log the same
 * sequence and tests can assert it.
 *
 * Refuses, with an error naming the culprit: a duplicate name (E_COMPONENT_DUPLICATE), a
 * dependency that is not registered (E_COMPONENT_MISSING_DEP), a cycle
 * (E_COMPONENT_CYCLE, with the path `a → b → a`, where `→` reads "depends on").
 */
export interface GraphNode {
  name: string
  dependsOn: string[]
}

export function bootOrder(defs: ReadonlyArray<GraphNode>): string[] {
  const deps = new Map<string, string[]>()
  for (const d of defs) {
    if (deps.has(d.name)) throw COMPONENT_DUPLICATE({ component: d.name })
    deps.set(d.name, [...new Set(d.dependsOn)].sort(byName))
  }
  const names = [...deps.keys()].sort(byName)
  for (const name of names) {
    for (const dep of deps.get(name) ?? []) {
      if (!deps.has(dep)) throw COMPONENT_MISSING_DEP({ component: name, dependency: dep })
    }
  }

  // Kahn's algorithm; `ready` is kept sorted so ties break by name.
  const waitingOn = new Map<string, number>()
  const dependents = new Map<string, string[]>()
  for (const name of names) {
    const ds = deps.get(name) ?? []
    waitingOn.set(name, ds.length)
    for (const dep of ds) dependents.set(dep, [...(dependents.get(dep) ?? []), name])
  }
  const ready = names.filter((n) => waitingOn.get(n) === 0)
  const order: string[] = []
  while (ready.length > 0) {
    const next = ready.shift() as string
    order.push(next)
    for (const dependent of dependents.get(next) ?? []) {
      const left = (waitingOn.get(dependent) ?? 0) - 1
      waitingOn.set(dependent, left)
      if (left === 0) insertSorted(ready, dependent)
    }
  }
  if (order.length < names.length) {
    const stuck = new Set(names.filter((n) => !order.includes(n)))
    throw COMPONENT_CYCLE({ path: findCycle(stuck, deps) })
  }
  return order
}

/** Shutdown order: the boot order reversed, so a component stops before what it depends on. */
export function shutdownOrder(defs: ReadonlyArray<GraphNode>): string[] {
  return bootOrder(defs).reverse()
}

/**
 * Every node left after Kahn's algorithm has a dependency that is also left, so walking
 * "first stuck dependency" from any stuck node must revisit a node: that loop is a cycle.
 */
function findCycle(stuck: Set<string>, deps: Map<string, string[]>): string[] {
  const start = [...stuck].sort(byName)[0] as string
  const path: string[] = []
  const seenAt = new Map<string, number>()
  let cur = start
  while (!seenAt.has(cur)) {
    seenAt.set(cur, path.length)
    path.push(cur)
    cur = (deps.get(cur) ?? []).find((d) => stuck.has(d)) as string
  }
  return [...path.slice(seenAt.get(cur)), cur]
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function insertSorted(list: string[], item: string): void {
  let i = 0
  while (i < list.length && byName(list[i] as string, item) < 0) i++
  list.splice(i, 0, item)
}
