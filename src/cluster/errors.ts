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

export const NODE_LEASE_MISMATCH = defineError<{ node: string; ttlMs: number; marginMs: number; other: string; otherTtlMs: number; otherMarginMs: number }>({
  code: 'E_NODE_LEASE_MISMATCH',
  class: 'conflict',
  area: 'cluster',
  message: (a) =>
    `Node ${a.node}'s lease (${a.ttlMs} ms, margin ${a.marginMs} ms) is unsafe beside node ${a.other}'s (${a.otherTtlMs} ms, margin ${a.otherMarginMs} ms): ` +
    'a node takes the leader key after its own lease, and the holder stops writing at its own lease minus its margin, so each lease must be at least every other one minus that one\'s margin.',
  hint: (a) => `Give this node the flock's lease: \`--ttl ${Math.ceil(a.otherTtlMs / 1000)}\` on \`up --etcd\` / \`node join\` (docs/multi-host.md, "Keep the lease the same on every node"). Nothing was started.`,
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

// Join bundles (`node invite` on a node, `node join --bundle` on the new host: join-bundle.ts).

export const NODE_INVITE_NOT_A_NODE = defineError<Record<string, never>>({
  code: 'E_NODE_INVITE_NOT_A_NODE',
  class: 'failed_precondition',
  area: 'cluster',
  message: () => 'This kernel is not a node of a multi-host flock: it has no flock to invite a host into.',
  hint: () => 'Run `magflock node invite` on a node (started with `magflock up --etcd … --node … --listen …`), or its kernel through `--api`.',
})

export const NODE_INVITE_EXISTS = defineError<{ node: string }>({
  code: 'E_NODE_INVITE_EXISTS',
  class: 'already_exists',
  area: 'cluster',
  message: (a) => `The flock already has a node named ${a.node}: a second host under that name would clash with it.`,
  hint: (a) => `Pick a name no node has (\`magflock node list\`), or, to renew ${a.node}'s certificate, \`magflock node invite ${a.node} --renew …\`. Nothing was issued.`,
})

export const NODE_RENEW_UNKNOWN = defineError<{ node: string }>({
  code: 'E_NODE_RENEW_UNKNOWN',
  class: 'not_found',
  area: 'cluster',
  message: (a) => `The flock has no node named ${a.node}: there is no certificate to renew.`,
  hint: (a) => `Check the name (\`magflock node list\`); to add a new host, invite it without --renew (\`magflock node invite ${a.node} --san ADDR --out FILE\`). Nothing was issued.`,
})

export const NODE_RENEW_SELF = defineError<{ node: string }>({
  code: 'E_NODE_RENEW_SELF',
  class: 'invalid_argument',
  area: 'cluster',
  message: (a) => `${a.node} is this node, which holds the flock CA key: it renews its own certificate without a bundle.`,
  hint: () => 'Run `magflock tls rotate` here. Nothing was issued.',
})

export const NODE_RENEW_NOT_JOINED = defineError<{ reason: string }>({
  code: 'E_NODE_RENEW_NOT_JOINED',
  class: 'failed_precondition',
  area: 'cluster',
  message: (a) => `This state directory is not a node a renewal bundle can renew: ${a.reason}.`,
  hint: () => 'Run `magflock tls renew --bundle FILE` in the project directory of the node the bundle was issued for (a new host joins with `magflock node join --bundle`). Nothing was changed.',
})

export const NODE_BUNDLE_KIND = defineError<{ node: string; renew: boolean }>({
  code: 'E_NODE_BUNDLE_KIND',
  class: 'invalid_argument',
  area: 'cluster',
  message: (a) => (a.renew ? `This is a renewal bundle (a new certificate for node ${a.node}), not a join bundle.` : `This is a join bundle for node ${a.node}, not a renewal bundle.`),
  hint: (a) => (a.renew ? `On node ${a.node}, install it with \`magflock tls renew --bundle FILE\`. Nothing was imported.` : `A new host joins with \`magflock node join --bundle FILE --listen ADDR\`; a renewal comes from \`magflock node invite ${a.node} --renew\`. Nothing was changed.`),
})

export const NODE_INVITE_SAN_INVALID = defineError<{ san: string }>({
  code: 'E_NODE_INVITE_SAN_INVALID',
  class: 'invalid_argument',
  area: 'cluster',
  message: (a) => `"${a.san.slice(0, 100)}" is not an address or host name for the new node's certificate (not loopback, not 0.0.0.0).`,
  hint: () => 'Pass each address (and DNS name) other nodes reach the new host by: `--san 10.0.0.2 [--san db-b.example.org]`; its `--listen` must be one of them.',
})

export const NODE_INVITE_NO_CA = defineError<{ reason: string }>({
  code: 'E_NODE_INVITE_NO_CA',
  class: 'failed_precondition',
  area: 'cluster',
  message: (a) => `This node cannot issue certificates from the flock CA: ${a.reason}.`,
  hint: () => 'Run `magflock node invite` on the node that holds the CA key (the one that ran `magflock tls init`); nothing was issued.',
})

export const NODE_INVITE_OUT_EXISTS = defineError<{ file: string }>({
  code: 'E_NODE_INVITE_OUT_EXISTS',
  class: 'already_exists',
  area: 'cluster',
  message: (a) => `${a.file} already exists: a join bundle never overwrites a file.`,
  hint: () => 'Name a new file with --out (and shred the old bundle once it is not needed: `shred -u FILE`).',
})

export const NODE_BUNDLE_UNREADABLE = defineError<{ file: string; reason: string }>({
  code: 'E_NODE_BUNDLE_UNREADABLE',
  class: 'invalid_argument',
  area: 'cluster',
  message: (a) => `Cannot read the join bundle ${a.file}: ${a.reason}.`,
  hint: () => 'Pass the file `magflock node invite … --out FILE` wrote on a node of the flock. Nothing was imported.',
})

export const NODE_BUNDLE_CORRUPT = defineError<{ reason: string }>({
  code: 'E_NODE_BUNDLE_CORRUPT',
  class: 'invalid_argument',
  area: 'cluster',
  message: (a) => `This is not an intact MagFlock join bundle: ${a.reason}.`,
  hint: () => 'The file was cut short or changed on the way: copy it again from the node that ran `magflock node invite`, or invite again. Nothing was imported.',
})

export const NODE_BUNDLE_CODE_MISSING = defineError<Record<string, never>>({
  code: 'E_NODE_BUNDLE_CODE_MISSING',
  class: 'invalid_argument',
  area: 'cluster',
  message: () => 'The bundle is encrypted and no code was given to open it.',
  hint: () => 'Pass the code `magflock node invite` printed: `--code XXXXX-XXXXX-XXXXX-XXXXX` (or run in a terminal to be asked for it).',
})

export const NODE_BUNDLE_CODE_WRONG = defineError<Record<string, never>>({
  code: 'E_NODE_BUNDLE_CODE_WRONG',
  class: 'permission_denied',
  area: 'cluster',
  message: () => 'The code does not open this join bundle (a wrong code, or the file was altered).',
  hint: () => 'Use the code printed by the `magflock node invite` that wrote this very file; a new invite has a new code. Nothing was imported.',
})

export const NODE_BUNDLE_EXPIRED = defineError<{ expiresAt: string }>({
  code: 'E_NODE_BUNDLE_EXPIRED',
  class: 'failed_precondition',
  area: 'cluster',
  message: (a) => `This bundle expired at ${a.expiresAt}.`,
  hint: () => 'Invite the host again on a node (`magflock node invite NAME --san ADDR --out FILE`, with `--renew` for a renewal). Nothing was imported.',
})

export const NODE_BUNDLE_WRONG_NODE = defineError<{ bundle: string; asked: string }>({
  code: 'E_NODE_BUNDLE_WRONG_NODE',
  class: 'invalid_argument',
  area: 'cluster',
  message: (a) => `This bundle is for node ${a.bundle}, not ${a.asked}: its certificate names ${a.bundle}.`,
  hint: (a) => `Join as \`--node ${a.bundle}\`, or invite ${a.asked} on a node of the flock (\`--renew\` for a renewal of ${a.asked}). Nothing was imported.`,
})

export const NODE_BUNDLE_WRONG_FLOCK = defineError<{ bundle: string; config: string }>({
  code: 'E_NODE_BUNDLE_WRONG_FLOCK',
  class: 'invalid_argument',
  area: 'cluster',
  message: (a) => `This bundle is for flock "${a.bundle}", but this project's magflock.yaml says flock: ${a.config}.`,
  hint: (a) => `Set \`flock: ${a.bundle}\` in magflock.yaml here (the flock name selects the keys in etcd), or use the bundle of the right flock. Nothing was imported.`,
})

export const NODE_BUNDLE_LISTEN = defineError<{ listen: string; sans: string[] }>({
  code: 'E_NODE_BUNDLE_LISTEN',
  class: 'invalid_argument',
  area: 'cluster',
  message: (a) => `The node's listen address ${a.listen} is not in the bundle's certificate (${a.sans.join(', ')}): other nodes would refuse this node's TLS.`,
  hint: () => 'Join with one of the certificate\'s addresses (`--listen`), or invite again (or renew) with `--san` naming this host\'s address. Nothing was imported.',
})

export const NODE_BUNDLE_CONFLICT = defineError<{ names: string[] }>({
  code: 'E_NODE_BUNDLE_CONFLICT',
  class: 'conflict',
  area: 'cluster',
  message: (a) => `This state directory already holds other values for ${a.names.join(', ')} than the join bundle.`,
  hint: () => 'A join bundle never overwrites: join with a fresh state directory (`--state-dir`), or remove what is listed (`magflock secrets rm NAME`, the files under <state>/tls) if it is not in use. Nothing was imported.',
})
