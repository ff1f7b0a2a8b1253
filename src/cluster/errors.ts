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

export const NODE_FLAGS_INCOMPLETE = defineError<{ missing: string }>({
  code: 'E_NODE_FLAGS_INCOMPLETE',
  class: 'invalid_argument',
  area: 'cluster',
  message: (a) => `A node of a multi-host flock needs --etcd, --node and --listen together; missing: ${a.missing}.`,
  hint: () => 'Pass all three, e.g. `magflock up --etcd https://10.0.0.1:2379 --node a --listen 10.0.0.1`, or none for a one-host flock.',
})

export const NODE_NAME_INVALID = defineError<{ name: string }>({
  code: 'E_NODE_NAME_INVALID',
  class: 'invalid_argument',
  area: 'cluster',
  message: (a) => `"${a.name.slice(0, 100)}" is not a node name (a lowercase letter, then up to 39 lowercase letters, digits or _).`,
  hint: () => 'Name each machine of the flock once, e.g. `--node a` or `--node db_east_1`.',
})

export const NODE_LISTEN_INVALID = defineError<{ listen: string }>({
  code: 'E_NODE_LISTEN_INVALID',
  class: 'invalid_argument',
  area: 'cluster',
  message: (a) => `"${a.listen.slice(0, 100)}" is not an IP address this node can listen on for the other nodes.`,
  hint: () => 'Pass the address of this machine the other nodes reach, e.g. `--listen 10.0.0.1` (not 127.0.0.1, not 0.0.0.0).',
})

export const NODE_SETTINGS_CONFLICT = defineError<{ key: string; current: string; asked: string }>({
  code: 'E_NODE_SETTINGS_CONFLICT',
  class: 'conflict',
  area: 'cluster',
  message: (a) => `This state directory already is a node with ${a.key} ${a.current}, not ${a.asked}.`,
  hint: () => 'Run `magflock up` without node flags to start it as it is; a node never changes its name, flock store or address in place. Use another --state-dir for another node.',
})

export const NODE_KERNEL_RUNNING = defineError<Record<string, never>>({
  code: 'E_NODE_KERNEL_RUNNING',
  class: 'conflict',
  area: 'cluster',
  message: () => 'A one-host kernel already serves this state directory; it cannot become a node of a multi-host flock while it runs.',
  hint: () => 'Stop it first (`magflock down`), then run the node command again.',
})

export const NODE_SECRETS_MISSING = defineError<{ names: string[] }>({
  code: 'E_NODE_SECRETS_MISSING',
  class: 'failed_precondition',
  area: 'cluster',
  message: (a) => `A joining node needs the flock's ${a.names.join(', ')} in its secret store; it has none.`,
  hint: () => 'Copy them from the first node: `magflock secrets get NAME --reveal` there, `magflock secrets set NAME --from-stdin` here (docs/multi-host.md, "Adding a node").',
})

export const NODE_FLOCK_LED_ELSEWHERE = defineError<{ leader: string }>({
  code: 'E_NODE_FLOCK_LED_ELSEWHERE',
  class: 'conflict',
  area: 'cluster',
  message: (a) => `The flock already has a primary on node ${a.leader}; this node would start a second one.`,
  hint: () => 'Add this machine with `magflock node join --etcd … --node NAME --listen ADDR`: it clones the current primary.',
})

export const NODE_NO_LEADER = defineError<{ waitedS: number }>({
  code: 'E_NODE_NO_LEADER',
  class: 'unavailable',
  area: 'cluster',
  message: (a) => `No node of the flock led (held the leader key with a known address) within ${a.waitedS} s: there is nothing to clone.`,
  hint: () => 'Start the first node with `magflock up --etcd … --node NAME --listen ADDR`, check `magflock node list`, then join again.',
})

export const SWITCHOVER_TARGET_INVALID = defineError<{ to: string; reason: string }>({
  code: 'E_NODE_SWITCHOVER_TARGET',
  class: 'failed_precondition',
  area: 'cluster',
  message: (a) => `Cannot switch over to "${a.to}": ${a.reason}.`,
  hint: () => '`magflock node list` shows the instances, their nodes and the sync standby; name a replica on another node.',
})

export const SWITCHOVER_NOT_DONE = defineError<{ to: string; reason: string }>({
  code: 'E_NODE_SWITCHOVER_FAILED',
  class: 'unavailable',
  area: 'cluster',
  message: (a) => `The switchover to ${a.to} did not complete: ${a.reason}.`,
  hint: () => 'The old primary serves again or the target leads; `magflock node list` says which. Retry once the target streams.',
})

export const NODE_REPLICA_BY_JOIN = defineError<{ node: string | undefined }>({
  code: 'E_NODE_REPLICA_ADD',
  class: 'failed_precondition',
  area: 'cluster',
  message: (a) =>
    `On a multi-host flock each replica is a node with its own kernel: \`replica add\` cannot start ${a.node ? `node ${a.node}'s instance` : 'a second instance on this node'} from here.`,
  hint: (a) =>
    `On the ${a.node ? `host of node ${a.node}` : 'new host'}, with the flock's TLS material and passwords, run \`magflock node join --etcd … --node ${a.node ?? '<name>'} --listen <its address> --sync\` (or --async) (docs/multi-host.md, "Adding a node"). Nothing was changed.`,
})

export const REPLICA_NODE_ONE_HOST = defineError<{ node: string }>({
  code: 'E_REPLICA_NODE_ONE_HOST',
  class: 'invalid_argument',
  area: 'cluster',
  message: (a) => `--node ${a.node} names a host of a multi-host flock, but this flock runs on one host.`,
  hint: () => 'Drop --node to add a replica on this host; a multi-host flock starts with `magflock up --etcd … --node … --listen …` (docs/multi-host.md). Nothing was changed.',
})
