import type { BoundRoute } from '../services.js'

// Filled in by the kernel integration (status, shutdown, tokens, audit, metrics, logs).
export const coreRoutes: BoundRoute[] = []
