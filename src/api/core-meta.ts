import { ALL_ROLES, type RouteMeta } from './route-meta.js'

/**
 * Metadata of the foundation routes the CLI calls on its fast paths, without zod: the
 * contracts in core.ts spread these objects (one declaration per route), and src/api/lazy.ts
 * hands them to the client with a loader for the schemas.
 */
export const statusMeta = {
  id: 'status',
  method: 'GET',
  path: '/v1/status',
  roles: ALL_ROLES,
  mutating: false,
} as const satisfies RouteMeta
