import { defineError } from '../errors/index.js'

// Errors of the cluster area (several hosts: the flock store on etcd, nodes, leadership).

export const STORE_UNAVAILABLE = defineError<{ endpoints: string; reason: string }>({
  code: 'E_FLOCK_STORE_UNAVAILABLE',
  class: 'unavailable',
  area: 'cluster',
  message: (a) => `The flock store (etcd at ${a.endpoints}) did not answer: ${a.reason}.`,
  hint: () => 'Check that a majority of the etcd members is up and reachable from this host (`etcdctl endpoint health`); nothing was changed.',
})

export const STORE_CONFLICT = defineError<{ key: string; attempts: number }>({
  code: 'E_FLOCK_STORE_CONFLICT',
  class: 'conflict',
  area: 'cluster',
  message: (a) => `The flock store key "${a.key}" kept changing under ${a.attempts} attempts to update it.`,
  hint: () => 'Another node is writing the same state; retry the command in a moment.',
})

export const STORE_CORRUPT = defineError<{ key: string; reason: string }>({
  code: 'E_FLOCK_STORE_CORRUPT',
  class: 'data_loss',
  area: 'cluster',
  message: (a) => `The flock store key "${a.key}" holds something that is not MagFlock state: ${a.reason}.`,
  hint: () => 'Inspect it with `etcdctl get --prefix /magflock/`; restore it from a node\'s `magflock node list --json` or remove the key.',
})

export const INVALID_ETCD_ENDPOINT = defineError<{ endpoint: string }>({
  code: 'E_ETCD_ENDPOINT_INVALID',
  class: 'invalid_argument',
  area: 'cluster',
  message: (a) => `"${a.endpoint.slice(0, 200)}" is not an etcd endpoint (http(s)://HOST:PORT).`,
  hint: () => 'Pass the client URLs of the etcd members, comma separated: `--etcd https://etcd1:2379,https://etcd2:2379`.',
})
