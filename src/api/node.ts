import { z } from 'zod'
import { ADMIN_ONLY, defineRoute } from './route.js'

/**
 * Inviting a host into a multi-host flock (docs/multi-host.md, "Adding a node"): the node's
 * kernel issues the new node's certificate from the flock CA it holds and seals it, with the
 * flock's passwords and etcd endpoints, into a join bundle under a one-time code. With
 * `renew`, a new certificate for a node the flock has, without the passwords. Admin only:
 * the bundle and its code together are the flock's credentials. The response carries both,
 * once (the command writes the bundle to a 0600 file and prints the code); neither is kept by
 * the kernel or written to its audit record (node name, names in the certificate, its
 * fingerprint, expiry).
 */
export const nodeInvite = defineRoute({
  id: 'node.invite',
  method: 'POST',
  path: '/v1/node/invite',
  roles: ADMIN_ONLY,
  mutating: true,
  input: z.object({
    node: z.string().min(1).max(40),
    sans: z.array(z.string().min(1).max(253)).min(1).max(16),
    /** etcd client URLs for the new node, comma separated (default: this node's). */
    etcd: z.string().min(1).max(2000).optional(),
    validHours: z.number().int().min(1).max(720).default(24),
    /** A renewal bundle for a node the flock has: a new certificate, without the passwords. */
    renew: z.boolean().default(false),
  }),
  output: z.object({
    node: z.string(),
    flock: z.string(),
    invitedBy: z.string(),
    renew: z.boolean(),
    etcd: z.array(z.string()),
    certNames: z.array(z.string()),
    certNotAfter: z.string(),
    certFingerprint: z.string(),
    expiresAt: z.string(),
    /** The encrypted bundle (the file's content). */
    bundle: z.string(),
    /** The one-time code that opens it: shown once, kept nowhere. */
    code: z.string(),
  }),
})
