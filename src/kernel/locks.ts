import type { OperationLocks } from './services.js'
import { BUSY } from './errors.api.js'

/** In-kernel, in-memory exclusion between long operations on one resource. */
export class InMemoryLocks implements OperationLocks {
  private readonly held = new Map<string, string>()

  acquire(resource: string, operation: string): () => void {
    const holder = this.held.get(resource)
    if (holder !== undefined) throw BUSY({ resource, holder, operation })
    this.held.set(resource, operation)
    let released = false
    return () => {
      if (released) return
      released = true
      this.held.delete(resource)
    }
  }

  holder(resource: string): string | undefined {
    return this.held.get(resource)
  }
}
