import { createHash } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { WebSocket } from 'ws'
import type { Change } from './change.js'
import { matchFilter, parseFilter, FilterError, type Filter } from './filters.js'
import type { Claims, VerifyResult } from './jwt.js'
import { rowJson, type Relation } from './pgoutput.js'
import { defaultPresenceKey, TopicPresence, type PresenceMap } from './presence.js'
import { FrameLog, frameHead, writeFrameHead, type Cursor } from './feed.js'
import { decodeFrame, encodeFrame, ProtocolError, type Frame, type Vsn } from './protocol.js'
import type { NativeWrites } from './native.js'
import { trace } from './trace.js'

/**
 * The channel hub: every WebSocket client, its channel joins, broadcast, presence and the
 * fan-out of decoded database changes. It speaks the Supabase Realtime dialect of Phoenix
 * channels (see docs/realtime.md for the message table). It owns no I/O besides the sockets
 * handed to it: token checks, row visibility (RLS) and role lookups are injected.
 *
 * Bounds: a client's send buffer (ws bufferedAmount) past `maxBufferedBytes` drops the client
 * ("slow consumer", close 1008); a client may hold `maxChannelsPerClient` joins; frames larger
 * than the ws server's maxPayload never reach here (ws closes with 1009).
 */
export interface VisibilityGroup {
  key: string
  role: string
  claims: Claims
}

export interface HubDeps {
  maxBufferedBytes: number
  maxChannelsPerClient: number
  verify(token: unknown): VerifyResult
  /**
   * Which groups may SELECT each changed row of a batch (RLS as that role with those claims),
   * in order; for a DELETE on an RLS table a group may be answered with KEYS_ONLY too.
   */
  visibleBatch(items: Array<{ change: Change; groups: VisibilityGroup[] }>): Promise<Array<Set<string>>>
  /** The same answer from cache alone, or undefined when a query would be needed. */
  visibleGroupsCached?(change: Change, groups: VisibilityGroup[]): Set<string> | undefined
  /** Does this database role exist (postgres_changes joins only)? undefined: cannot tell now. */
  roleExists(role: string): Promise<boolean | undefined>
  /** Is schema.table part of the realtime publication? (undefined: cannot tell right now) */
  published(schema: string, table: string | undefined): Promise<boolean | undefined>
  publication: string
  onDropSlow?(bytes: number): void
  onProtocolError?(reason: string): void
  onDelivered?(n: number, commitToSendMs: number): void
  /** A change that could not be delivered (e.g. the RLS check failed): it is skipped. */
  onDeliveryError?(err: Error): void
  now?(): number
  /**
   * How long a flush slice writes before yielding (default SLICE_MS); Infinity writes the whole
   * queue in one turn (the hub before slices: bench/realtime.mjs compares the two).
   */
  flushSliceMs?: number
  /**
   * The native writer (src/realtime/native.ts): a flush slice hands its sockets' bytes to it in
   * batches instead of writing each socket through Node. Absent: every write goes through Node.
   */
  nativeWrites?: NativeWrites
  /**
   * Called between flush slices that leave writes pending (realtime.yieldCpu: the native part's
   * sched_yield, src/realtime/native.ts). Absent: the flush goes on at the next turn.
   */
  yieldCpu?: () => void
}

interface Binding {
  id: number
  event: '*' | 'INSERT' | 'UPDATE' | 'DELETE'
  schema: string
  table: string | undefined
  filterText: string | undefined
  filter: Filter | undefined
}

interface Member {
  id: string
  client: Client
  topic: string
  subTopic: string
  /** topic key: private and public channels of the same name are apart */
  key: string
  joinRef: string | null
  self: boolean
  ack: boolean
  private: boolean
  presenceKey: string
  presenceEnabled: boolean
  claims: Claims
  /** groupKey(claims): members with the same key share one visibility check. */
  gkey: string
  bindings: Binding[]
  expiry: NodeJS.Timeout | undefined
  /** The feed of its postgres_changes frames (members with bindings only), and its place in it. */
  feed: Feed | undefined
  cursor: Cursor | undefined
  /** In its feed's `waiting` list (at the log's end, its client not queued for it). */
  waiting: boolean
}

/**
 * The members sent the same postgres_changes frames: the same protocol version, join ref, topic
 * and bindings (so the same filters). A change whose row every group of the feed may see the
 * same way is appended to its log once and reaches every member from there, so the cost of a
 * change is per feed, not per subscriber (1,000 clients of one topic: one append). A change
 * its groups see differently (row-level security) is sent member by member instead.
 */
interface Feed {
  key: string
  vsn: Vsn
  joinRef: string | null
  topic: string
  bindings: Binding[]
  members: Set<Member>
  /** Visibility groups of its members (groupKey → how many members, and their claims). */
  groups: Map<string, { n: number; claims: Claims }>
  log: FrameLog
  /**
   * Members whose cursor is at the log's end and whose client is not queued for a write: the
   * next append queues their clients (and forgets them) once, not once per change.
   */
  waiting: Member[]
  /** Cached frame prefixes for the last binding ids (full row, keys only). */
  prefix: { ids: number[]; buf: Buffer } | undefined
  prefixKeys: { ids: number[]; buf: Buffer } | undefined
  /** Appended to since the last sweep (an idle, caught-up feed gives its buffer back). */
  active: boolean
}

interface Client {
  id: number
  ws: WebSocket
  vsn: Vsn
  claims: Claims
  members: Map<string, Member>
  /** Its members that have a feed (the flush walks these, not every member). */
  feeds: Member[]
  lastSeen: number
  dropped: boolean
  /** The TCP socket under ws: frames built here are written to it directly. */
  sock: FrameSink
  /** The socket's fd for the native writer (-1: none, e.g. not a plain TCP socket). */
  fd: number
  /**
   * Frames waiting for this turn's flush (one write per client per flush), as a node of the
   * turn's sequence trie: clients sent the same frames in the same order share the node, and
   * the concatenated bytes are built once for all of them.
   */
  seq: SeqNode
  /** The socket's unsent bytes when this turn's first frame was queued. */
  unsent: number
  /** In the hub's list of clients to flush. */
  queued: boolean
}

interface Hit {
  feed: Feed
  ids: number[]
}

interface MatchPlan {
  version: number
  /** Feeds receiving every change of this relation and type (no filter to evaluate). */
  fixed: Hit[]
  /** Feeds with a filtered binding: evaluated per row, once per feed. */
  filtered: Array<{ feed: Feed; bindings: Binding[] }>
}

/** A sequence of frames: its last frame, the node before it, its total bytes. */
interface SeqNode {
  parent: SeqNode | undefined
  frame: Buffer | undefined
  bytes: number
  /** The usual single successor, then any others. */
  nextFrame: Buffer | undefined
  nextNode: SeqNode | undefined
  more: Map<Buffer, SeqNode> | undefined
  /** The frames concatenated, once built. */
  joined: Buffer | undefined
}

function newRoot(): SeqNode {
  return { parent: undefined, frame: undefined, bytes: 0, nextFrame: undefined, nextNode: undefined, more: undefined, joined: undefined }
}

/** A client with nothing queued (its first frame of a turn moves it to the turn's root). */
const EMPTY: SeqNode = newRoot()

function step(node: SeqNode, frame: Buffer): SeqNode {
  if (node.nextFrame === frame) return node.nextNode!
  let child = node.more?.get(frame)
  if (child) return child
  child = { parent: node, frame, bytes: node.bytes + frame.length, nextFrame: undefined, nextNode: undefined, more: undefined, joined: undefined }
  if (node.nextFrame === undefined) {
    node.nextFrame = frame
    node.nextNode = child
  } else (node.more ??= new Map()).set(frame, child)
  return child
}

function joined(node: SeqNode): Buffer {
  if (node.joined) return node.joined
  const frames: Buffer[] = []
  for (let n: SeqNode | undefined = node; n?.frame; n = n.parent) frames.push(n.frame)
  frames.reverse()
  node.joined = frames.length === 1 ? frames[0]! : Buffer.concat(frames, node.bytes)
  return node.joined
}

/** A flush slice's sockets for one native write call (see Hub.sendBatch). */
interface WriteBatch {
  clients: Client[]
  fds: Int32Array
  bufs: Buffer[]
  /** Per socket: bytes taken or -errno (filled by writeMany). */
  out: Int32Array
  n: number
}

interface FrameSink {
  write(b: Buffer): boolean
  /** Bytes Node holds for the socket, not yet taken by the OS (ours and ws's own writes). */
  readonly writableLength: number
  readonly writable: boolean
  /** Node's handle (TCP for a plain socket): its fd is the socket's (absent once closed). */
  readonly _handle?: { fd?: number; constructor: { name: string } } | null
  /** true on a TLS socket. */
  readonly encrypted?: boolean
}

export interface HubStatus {
  clients: number
  channels: number
  postgresSubscriptions: number
  presences: number
}

let nextClientId = 0
let nextMemberId = 0

export class Hub {
  private readonly clients = new Set<Client>()
  /** topic key → members */
  private readonly topics = new Map<string, Set<Member>>()
  private readonly presence = new Map<string, TopicPresence>()
  private readonly pgMembers = new Set<Member>()
  /** postgres_changes feeds by key (see Feed). */
  private readonly feeds = new Map<string, Feed>()
  private readonly now: () => number
  /**
   * Clients with frames queued, in the order they are written: a FIFO from `dirtyHead` (see
   * flushSlice). A client written and sent more frames later goes back to its tail.
   */
  private dirty: Client[] = []
  private dirtyHead = 0
  /** Clients ever appended to `dirty` / taken from it: a change is written to every recipient
   * once `taken` reaches the `appended` count of the moment its frames were queued. */
  private appended = 0
  private taken = 0
  /** Root of the current slice's frame-sequence trie (see Client.seq). */
  private root: SeqNode = newRoot()
  private flushScheduled = false
  /** Per relation: the JSON of its fixed part (schema, table, columns), built once. */
  private readonly relJson = new WeakMap<Relation, string>()
  /** The JSON before the rows of the last change sent (see send_). */
  private lastHead: { rel: Relation | undefined; time: number; type: string; json: string } = { rel: undefined, time: NaN, type: '', json: '' }
  /** Per relation and event type: who gets its changes (see match). */
  private readonly plans = new WeakMap<Relation, Map<string, MatchPlan>>()
  /** Bumped whenever a postgres_changes subscription or its claims change. */
  private membersVersion = 0
  private readonly groupsOf = new WeakMap<Hit[], VisibilityGroup[]>()
  /** Frame prefixes by their text (see changePrefix). */
  private readonly prefixes = new Map<string, Buffer>()
  /**
   * Deliveries not yet reported (metrics, commit → send): per transaction, with the `appended`
   * ticket after which all its frames are written; reported by the slice that writes the last.
   */
  private readonly acct: Array<{ n: number; commitTime: number; ticket: number }> = []
  /**
   * Changes waiting for an RLS check, in commit order; checked in batches (one round trip per
   * group per batch), delivered in order, even when a check awaits.
   */
  private pending: Change[] = []
  private inFlight = 0
  private running: Promise<void> | undefined

  private readonly sliceMs: number
  /**
   * The slices' batch for the native writer, if there is one (flushSlice fills it through
   * flushClient and sends it every BATCH clients): the clients, their sockets' fds and their bytes.
   */
  private readonly batch: WriteBatch | undefined

  constructor(private readonly d: HubDeps) {
    this.now = d.now ?? Date.now
    this.sliceMs = d.flushSliceMs ?? SLICE_MS
    if (d.nativeWrites) this.batch = { clients: [], fds: new Int32Array(BATCH), bufs: [], out: new Int32Array(BATCH), n: 0 }
  }

  status(): HubStatus {
    let presences = 0
    for (const p of this.presence.values()) presences += p.size
    let channels = 0
    for (const c of this.clients) channels += c.members.size
    return { clients: this.clients.size, channels, postgresSubscriptions: this.pgMembers.size, presences }
  }

  /** Changes waiting for delivery (decoded, not yet sent). */
  backlog(): number {
    return this.pending.length + this.inFlight
  }

  /** A WebSocket whose upgrade carried a verified token (apikey). */
  attach(ws: WebSocket, vsn: Vsn, claims: Claims): void {
    // ws writes frames to this socket itself; ours go there too, in the same order (no
    // per-message deflate: ws's sender never holds a frame back, see docs/realtime.md).
    const sock = (ws as unknown as { _socket?: FrameSink })._socket
    if (!sock) {
      ws.terminate()
      return
    }
    // The native writer is for plain TCP sockets only: a TLS socket's handle reports the fd under
    // it too, and bytes sent there would bypass TLS. The fd is read once: it stays the socket's
    // until its handle closes (then _handle is null).
    const fd = this.d.nativeWrites && !sock.encrypted && sock._handle?.constructor.name === 'TCP' ? sock._handle.fd : undefined
    const client: Client = { id: ++nextClientId, ws, vsn, claims, members: new Map(), feeds: [], lastSeen: this.now(), dropped: false, sock, fd: typeof fd === 'number' && fd >= 0 ? fd : -1, seq: EMPTY, unsent: 0, queued: false }
    this.clients.add(client)
    ws.on('message', (data, isBinary) => {
      client.lastSeen = this.now()
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)
      let frame: Frame
      try {
        frame = decodeFrame(buf, isBinary, vsn)
      } catch (err) {
        const reason = err instanceof ProtocolError ? err.message : 'malformed frame'
        this.d.onProtocolError?.(reason)
        // As Phoenix does on a frame it cannot decode: the socket goes (1007: invalid data).
        ws.close(1007, reason.slice(0, 120))
        return
      }
      void this.handle(client, frame).catch((err: Error) => {
        if (frame.ref) this.reply(client, frame, 'error', { reason: `internal error: ${err.message}` })
      })
    })
    ws.on('close', () => this.detach(client))
    ws.on('error', () => ws.terminate())
  }

  /** Drops clients silent for longer than `ms` (no heartbeat); realtime-js beats every 25 s. */
  sweep(ms: number): number {
    const cutoff = this.now() - ms
    let n = 0
    for (const c of this.clients) {
      if (c.lastSeen < cutoff) {
        c.ws.terminate()
        this.detach(c)
        n++
      }
    }
    // Feeds idle since the last sweep with every member caught up give their buffer back.
    for (const f of this.feeds.values()) {
      if (!f.active && everyWaiting(f)) f.log.release()
      f.active = false
    }
    return n
  }

  closeAll(code: number, reason: string): void {
    for (const c of [...this.clients]) {
      this.flushClient(c)
      c.ws.close(code, reason)
      this.detach(c)
    }
  }

  /** A system message on every channel with postgres_changes (a gap, a stream restart). */
  systemNotice(status: 'ok' | 'error', message: string): number {
    let n = 0
    for (const m of this.pgMembers) {
      this.push(m, 'system', { extension: 'postgres_changes', status, message, channel: m.subTopic })
      n++
    }
    return n
  }

  // ——— incoming messages ———

  private async handle(c: Client, f: Frame): Promise<void> {
    if (f.topic === 'phoenix') {
      if (f.event === 'heartbeat') this.reply(c, f, 'ok', {})
      else this.reply(c, f, 'error', { reason: `unknown event "${f.event}" on topic phoenix` })
      return
    }
    if (f.event === 'phx_join') return this.join(c, f)
    const m = c.members.get(f.topic)
    if (!m || (f.joinRef !== null && m.joinRef !== null && f.joinRef !== m.joinRef)) {
      this.reply(c, f, 'error', { reason: 'unmatched topic' })
      return
    }
    switch (f.event) {
      case 'phx_leave':
        this.reply(c, f, 'ok', {})
        this.leave(m)
        return
      case 'access_token':
        return this.refreshToken(m, f)
      case 'broadcast':
        return this.broadcast(m, f)
      case 'presence':
        return this.presenceEvent(m, f)
      default:
        this.reply(c, f, 'error', { reason: `unknown event "${f.event}"` })
    }
  }

  private async join(c: Client, f: Frame): Promise<void> {
    if (!f.topic.startsWith('realtime:') || f.topic.length === 'realtime:'.length) {
      this.reply(c, f, 'error', { reason: 'UnknownTopic: topics are "realtime:<name>"' })
      return
    }
    const subTopic = f.topic.slice('realtime:'.length)
    const cfg = isObj(f.payload.config) ? f.payload.config : {}
    const token = f.payload.access_token ?? f.payload.user_token
    let claims = c.claims
    if (token !== undefined && token !== null) {
      const v = this.d.verify(token)
      if (!v.ok) {
        this.reply(c, f, 'error', { reason: `${v.reason === 'malformed' ? 'MalformedJWT' : v.reason === 'signature' ? 'JwtSignatureError' : 'InvalidJWTToken'}: ${v.message}` })
        return
      }
      claims = v.claims
    } else if (c.claims.exp * 1000 <= this.now()) {
      this.reply(c, f, 'error', { reason: 'InvalidJWTToken: Token has expired' })
      return
    }
    const isPrivate = cfg.private === true
    if (isPrivate && !topicAllowed(claims, subTopic)) {
      this.reply(c, f, 'error', { reason: `Unauthorized: You do not have permissions to read from this Channel topic: ${subTopic}` })
      return
    }
    const existing = c.members.get(f.topic)
    if (!existing && c.members.size >= this.d.maxChannelsPerClient) {
      this.reply(c, f, 'error', { reason: `ChannelRateLimitReached: Too many channels (at most ${this.d.maxChannelsPerClient} per connection)` })
      return
    }
    let bindings: Binding[]
    try {
      bindings = parseBindings(cfg.postgres_changes)
    } catch (err) {
      this.reply(c, f, 'error', { reason: `InvalidJoinPayload: ${(err as Error).message}` })
      return
    }
    if (bindings.length > 0) {
      const exists = await this.d.roleExists(claims.role)
      if (exists === undefined) {
        this.reply(c, f, 'error', { reason: `Unavailable: the token's role "${claims.role}" could not be checked (the database did not answer); join again` })
        return
      }
      if (!exists) {
        this.reply(c, f, 'error', { reason: `Unauthorized: the token's role "${claims.role}" is not a database role` })
        return
      }
    }
    // The client may have gone or re-joined while we awaited.
    if (c.dropped || c.ws.readyState !== c.ws.OPEN) return
    if (existing) this.leave(existing)
    const broadcast = isObj(cfg.broadcast) ? cfg.broadcast : {}
    const presence = isObj(cfg.presence) ? cfg.presence : {}
    const m: Member = {
      id: `m${++nextMemberId}`,
      client: c,
      topic: f.topic,
      subTopic,
      key: `${isPrivate ? 'private' : 'public'}:${subTopic}`,
      joinRef: f.joinRef ?? f.ref,
      self: broadcast.self === true,
      ack: broadcast.ack === true,
      private: isPrivate,
      presenceKey: typeof presence.key === 'string' && presence.key !== '' ? presence.key : defaultPresenceKey(),
      presenceEnabled: presence.enabled === true,
      claims,
      gkey: groupKey(claims),
      bindings,
      expiry: undefined,
      feed: undefined,
      cursor: undefined,
      waiting: false,
    }
    c.members.set(f.topic, m)
    let set = this.topics.get(m.key)
    if (!set) this.topics.set(m.key, (set = new Set()))
    set.add(m)
    if (bindings.length > 0) {
      this.pgMembers.add(m)
      this.attachFeed(m)
      this.membersVersion++
    }
    this.scheduleExpiry(m)
    this.reply(c, f, 'ok', {
      postgres_changes: bindings.map((b) => ({ id: b.id, event: b.event, schema: b.schema, table: b.table, ...(b.filterText !== undefined ? { filter: b.filterText } : {}) })),
    })
    if (bindings.length > 0) {
      const missing: string[] = []
      for (const b of bindings) {
        if ((await this.d.published(b.schema, b.table)) === false) missing.push(b.table ? `${b.schema}.${b.table}` : b.schema)
      }
      if (missing.length > 0) {
        this.push(m, 'system', {
          extension: 'postgres_changes',
          status: 'error',
          message: `TableNotPublished: ${missing.join(', ')} not in publication ${this.d.publication}; run ALTER PUBLICATION ${this.d.publication} ADD TABLE …`,
          channel: subTopic,
        })
      } else {
        this.push(m, 'system', { extension: 'postgres_changes', status: 'ok', message: 'Subscribed to PostgreSQL', channel: subTopic })
      }
    }
    if (m.presenceEnabled) this.push(m, 'presence_state', this.topicPresence(m.key).state())
  }

  private scheduleExpiry(m: Member): void {
    if (m.expiry) clearTimeout(m.expiry)
    // setTimeout caps at 2^31-1 ms (~24 days); a later expiry is re-armed when it fires.
    const ms = Math.min(m.claims.exp * 1000 - this.now(), 2_147_000_000)
    m.expiry = setTimeout(() => {
      if (m.claims.exp * 1000 > this.now()) return this.scheduleExpiry(m)
      this.shutdownMember(m, 'Token has expired')
    }, Math.max(ms, 0))
    m.expiry.unref()
  }

  /** Like Supabase's shutdown_response: a system error, then the channel closes. */
  private shutdownMember(m: Member, message: string): void {
    this.push(m, 'system', { extension: 'system', status: 'error', message, channel: m.subTopic })
    this.push(m, 'phx_close', {})
    this.leave(m)
  }

  private refreshToken(m: Member, f: Frame): void {
    const token = f.payload.access_token
    if (token === undefined || token === null) return
    const v = this.d.verify(token)
    if (!v.ok) return this.shutdownMember(m, v.message)
    if (m.private && !topicAllowed(v.claims, m.subTopic)) return this.shutdownMember(m, `You no longer have permission to read from this Channel topic: ${m.subTopic}`)
    if (m.feed) groupOut(m.feed, m.gkey)
    m.claims = v.claims
    m.gkey = groupKey(v.claims)
    if (m.feed) groupIn(m.feed, m)
    if (this.pgMembers.has(m)) this.membersVersion++
    this.scheduleExpiry(m)
    if (f.ref) this.reply(m.client, f, 'ok', {})
  }

  private broadcast(m: Member, f: Frame): void {
    const p = f.payload
    if (typeof p.event !== 'string') {
      this.reply(m.client, f, 'error', { reason: 'broadcast needs {type: "broadcast", event, payload}' })
      return
    }
    const msg = { type: 'broadcast', event: p.event, payload: p.payload ?? {}, ...(p.meta !== undefined ? { meta: p.meta } : {}) }
    // One frame per distinct (vsn, join ref), written to every member that shares it.
    const frames = new Map<string, Buffer>()
    let msgJson: string | undefined
    for (const other of this.topics.get(m.key) ?? []) {
      if (other === m && !m.self) continue
      const key = `${other.client.vsn}\u0000${other.joinRef}`
      let frame = frames.get(key)
      if (frame === undefined) {
        msgJson ??= JSON.stringify(msg)
        const jr = JSON.stringify(other.joinRef)
        const topic = JSON.stringify(other.topic)
        frame = textFrame(
          other.client.vsn === '2.0.0'
            ? `[${jr},null,${topic},"broadcast",${msgJson}]`
            : `{"join_ref":${jr},"ref":null,"topic":${topic},"event":"broadcast","payload":${msgJson}}`,
        )
        frames.set(key, frame)
      }
      this.sendFrame(other.client, frame)
    }
    if (m.ack && f.ref) this.reply(m.client, f, 'ok', {})
  }

  private presenceEvent(m: Member, f: Frame): void {
    const event = typeof f.payload.event === 'string' ? f.payload.event.toLowerCase() : ''
    const tp = this.topicPresence(m.key)
    let diff: { joins: PresenceMap; leaves: PresenceMap } | undefined
    if (event === 'track') {
      const payload = f.payload.payload ?? {}
      if (!isObj(payload)) {
        this.reply(m.client, f, 'error', { reason: 'Presence track payload must be a map' })
        return
      }
      if (!m.presenceEnabled) {
        // This track enables presence for the member: it never got the join-time state.
        m.presenceEnabled = true
        this.push(m, 'presence_state', tp.state())
      }
      diff = tp.track(m.id, m.presenceKey, payload)
    } else if (event === 'untrack') {
      diff = tp.untrack(m.id)
    } else {
      this.reply(m.client, f, 'error', { reason: `unknown presence event "${String(f.payload.event)}"` })
      return
    }
    this.reply(m.client, f, 'ok', {})
    if (diff) this.presenceDiff(m.key, diff)
  }

  private topicPresence(key: string): TopicPresence {
    let p = this.presence.get(key)
    if (!p) this.presence.set(key, (p = new TopicPresence()))
    return p
  }

  private presenceDiff(key: string, diff: { joins: PresenceMap; leaves: PresenceMap }): void {
    for (const other of this.topics.get(key) ?? []) if (other.presenceEnabled) this.push(other, 'presence_diff', diff)
  }

  private leave(m: Member): void {
    if (m.expiry) clearTimeout(m.expiry)
    // What its feed holds for it still goes, before anything queued after the leave.
    if (m.feed && !m.client.dropped) this.takeFeed(m.client, m)
    this.detachFeed(m)
    if (m.client.members.get(m.topic) === m) m.client.members.delete(m.topic)
    if (this.pgMembers.delete(m)) this.membersVersion++
    const set = this.topics.get(m.key)
    set?.delete(m)
    const tp = this.presence.get(m.key)
    const diff = tp?.untrack(m.id)
    if (diff) this.presenceDiff(m.key, diff)
    if (set && set.size === 0) {
      this.topics.delete(m.key)
      if (tp && tp.size === 0) this.presence.delete(m.key)
    }
  }

  private detach(c: Client): void {
    if (!this.clients.delete(c)) return
    c.dropped = true
    for (const m of [...c.members.values()]) this.leave(m)
  }

  // ——— outgoing ———

  private reply(c: Client, f: Frame, status: 'ok' | 'error', response: unknown): void {
    this.send(c, encodeFrame(c.vsn, f.joinRef, f.ref, f.topic, 'phx_reply', { status, response }))
  }

  private push(m: Member, event: string, payload: unknown): void {
    this.send(m.client, encodeFrame(m.client.vsn, m.joinRef, null, m.topic, event, payload))
  }

  private send(c: Client, text: string): boolean {
    return this.sendFrame(c, textFrame(text))
  }

  /**
   * Queues a complete WebSocket frame (header included) for the client. A client's queued
   * frames leave in one write (or once 64 KiB are queued), so a burst of changes is not one
   * syscall per message; a frame shared by many clients (the same change on the same topic) is
   * built once and the same buffer is written to every socket. Clients are written in the
   * order they got their first queued frame (see flushSlice).
   */
  private sendFrame(c: Client, frame: Buffer): boolean {
    if (c.dropped || c.ws.readyState !== c.ws.OPEN) return false
    // Its feeds' frames queued before this one go before it (past its cap, it is dropped).
    for (const m of c.feeds) this.takeFeed(c, m)
    if (c.dropped || !this.queueBytes(c, frame)) return false
    if (c.seq.bytes >= FLUSH_BYTES) this.flushClient(c)
    else this.enqueue(c)
    return true
  }

  /** Adds bytes to the client's own queue (false: past its cap, it was dropped). */
  private queueBytes(c: Client, bytes: Buffer): boolean {
    // What the socket holds unsent is read once per turn (at the client's first queued frame).
    if (c.seq.bytes === 0) {
      c.seq = this.root
      c.unsent = c.ws.bufferedAmount
    }
    if (c.unsent + c.seq.bytes + bytes.length > this.d.maxBufferedBytes) {
      this.dropSlow(c)
      return false
    }
    c.seq = step(c.seq, bytes)
    return true
  }

  private enqueue(c: Client): void {
    if (c.queued) return
    c.queued = true
    this.dirty.push(c)
    this.appended++
    this.scheduleFlush()
  }

  /** Moves what the member's feed holds for it into the client's own queue (order kept). */
  private takeFeed(c: Client, m: Member): void {
    const f = m.feed!
    const bytes = f.log.take(m.cursor!)
    // At the log's end now: the next append queues the client (it is queued already if it had bytes).
    markWaiting(f, m)
    if (bytes) this.queueBytes(c, bytes)
  }

  private attachFeed(m: Member): void {
    const key = `${m.client.vsn}\u0000${m.joinRef}\u0000${m.topic}\u0000${m.bindings.map((b) => b.id).join(',')}`
    let f = this.feeds.get(key)
    if (!f) {
      const nf: Feed = { key, vsn: m.client.vsn, joinRef: m.joinRef, topic: m.topic, bindings: m.bindings, members: new Set(), groups: new Map(), log: new FrameLog(() => this.writeFullChunk(nf)), waiting: [], prefix: undefined, prefixKeys: undefined, active: false }
      this.feeds.set(key, (f = nf))
    }
    f.members.add(m)
    groupIn(f, m)
    m.feed = f
    m.cursor = f.log.cursor()
    m.waiting = false
    markWaiting(f, m)
    m.client.feeds.push(m)
  }

  private detachFeed(m: Member): void {
    const f = m.feed
    if (!f) return
    f.members.delete(m)
    // Its entry in f.waiting, if any, is skipped from now on (see appendFeed).
    m.waiting = false
    const i = m.client.feeds.indexOf(m)
    if (i >= 0) m.client.feeds.splice(i, 1)
    groupOut(f, m.gkey)
    m.feed = undefined
    m.cursor = undefined
    if (f.members.size === 0) this.feeds.delete(f.key)
  }

  /**
   * A frame for every member of the feed: copied into its log once; the clients of members
   * that were at its end go to the write queue (each once per write of it, not per change),
   * unless the socket already holds more than the cap.
   */
  private appendFeed(f: Feed, frame: Buffer): void {
    f.log.append(frame)
    this.queueReaders(f, frame.length)
  }

  /** appendFeed of the frame prefix + body + suffix, the body encoded straight into the log. */
  private appendFeedText(f: Feed, prefix: Buffer, body: string, suffix: Buffer): void {
    this.queueReaders(f, f.log.appendText(prefix, body, suffix))
  }

  /**
   * The feed's log starts a new chunk (a long run of changes decoded in one turn: a big
   * transaction): members with 16 KiB or more of the full chunk unsent are written now, from
   * that chunk alone (a view of it, no copy), instead of at the next slice from several chunks
   * joined.
   */
  private writeFullChunk(f: Feed): void {
    for (const m of f.members) if (f.log.pending(m.cursor!) >= SPILL_FLUSH_BYTES) this.flushClient(m.client)
  }

  private queueReaders(f: Feed, frameBytes: number): void {
    f.active = true
    if (f.waiting.length === 0) return
    for (const m of f.waiting) {
      // Left the feed, or listed twice (left and joined again): once.
      if (!m.waiting || m.feed !== f) continue
      m.waiting = false
      const c = m.client
      if (c.dropped) continue
      // The frame is in the log, not yet in the client's queue: counted once.
      if (c.ws.bufferedAmount + c.seq.bytes + frameBytes > this.d.maxBufferedBytes) {
        this.dropSlow(c, frameBytes)
        continue
      }
      this.enqueue(c)
    }
    f.waiting.length = 0
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    setImmediate(this.flushSlice)
  }

  /**
   * Writes queued clients, in FIFO order, for at most SLICE_MS, then yields to the event loop
   * (setImmediate: pending I/O is polled first) and goes on. A socket write costs several µs
   * (on loopback it runs the receiver's TCP input too), so writing 1,000 clients takes
   * milliseconds: changes decoded between slices join the frames of every client not yet
   * written (one write carries them all), and a client already written goes back to the tail.
   * So each client is written about once per pass over the queue, with everything that
   * arrived until its turn, and a change waits on average half a pass, not a whole flush of
   * every client followed by its own.
   */
  private readonly flushSlice = (): void => {
    this.flushScheduled = false
    // Clients that become dirty from now on share a new trie (those still queued keep theirs).
    this.root = newRoot()
    const t0 = performance.now()
    const traced = trace?.flushStart()
    let n = 0
    const batch = this.batch
    while (this.dirtyHead < this.dirty.length) {
      const c = this.dirty[this.dirtyHead++]!
      this.taken++
      c.queued = false
      this.flushClient(c, batch)
      if ((++n & (BATCH - 1)) === 0) {
        if (batch) this.sendBatch(batch)
        if (performance.now() - t0 >= this.sliceMs) break
      }
    }
    if (batch) this.sendBatch(batch)
    if (this.dirtyHead === this.dirty.length) {
      this.dirty = []
      this.dirtyHead = 0
    } else {
      if (this.dirtyHead >= 1024 && this.dirtyHead * 2 >= this.dirty.length) {
        this.dirty = this.dirty.slice(this.dirtyHead)
        this.dirtyHead = 0
      }
      // More to write: other threads runnable on this core (Postgres's, on a shared host) go
      // first, instead of waiting for the scheduler to preempt a pass that takes milliseconds.
      this.d.yieldCpu?.()
      this.scheduleFlush()
    }
    if (traced !== undefined) trace!.flushEnd(traced, n, this.taken)
    this.reportDelivered()
  }

  /**
   * Sends a slice's batch with one native call; what a send did not take (part of it, none:
   * EAGAIN, or an error) is written through the socket, as without the native writer, so Node
   * queues it (and counts it in bufferedAmount) or reports the error and closes the socket.
   */
  private sendBatch(b: WriteBatch): void {
    if (b.n === 0) return
    this.d.nativeWrites!.writeMany(b.fds, b.bufs, b.n, b.out)
    for (let i = 0; i < b.n; i++) {
      const r = b.out[i]!
      const buf = b.bufs[i]!
      if (r < buf.length) b.clients[i]!.sock.write(r > 0 ? buf.subarray(r) : buf)
    }
    b.clients.length = 0
    b.bufs.length = 0
    b.n = 0
  }

  private flushClient(c: Client, batch?: WriteBatch): void {
    const node = c.seq
    c.seq = EMPTY
    if (c.dropped || c.ws.readyState !== c.ws.OPEN) return
    // Its own queue first (replies, presence, broadcast, and feed bytes taken before them),
    // then what its feeds appended since: usually a single view of one log, written as is.
    let buf = node.bytes > 0 ? joined(node) : undefined
    let parts: Buffer[] | undefined
    let fromFeeds = 0
    for (const m of c.feeds) {
      const f = m.feed!
      const bytes = f.log.take(m.cursor!)
      markWaiting(f, m)
      if (!bytes) continue
      fromFeeds += bytes.length
      if (buf === undefined) buf = bytes
      else (parts ??= [buf]).push(bytes)
    }
    if (buf === undefined) return
    if (parts) buf = Buffer.concat(parts)
    // What Node holds unsent for the socket: ws's bufferedAmount, without its sender's queue,
    // which is always empty here (per-message deflate is off).
    const unsent = c.sock.writableLength
    if (fromFeeds > 0 && unsent + buf.length > this.d.maxBufferedBytes) {
      this.dropSlow(c, buf.length)
      return
    }
    // In a slice with the native writer: the socket's turn in the batch, if Node holds nothing
    // for it (bytes it holds go first, so those writes stay with Node).
    if (batch && unsent === 0 && c.fd >= 0 && c.sock._handle && c.sock.writable) {
      batch.clients.push(c)
      batch.bufs.push(buf)
      batch.fds[batch.n++] = c.fd
      return
    }
    c.sock.write(buf)
  }

  /**
   * A client that does not read lets our send buffer grow; past the cap it goes, with a
   * reason it can read if it ever reads again, and its socket is destroyed shortly after
   * (a close frame queued behind megabytes it does not read would never arrive).
   */
  private dropSlow(c: Client, more = 0): void {
    const bytes = c.ws.bufferedAmount + c.seq.bytes + more
    c.seq = EMPTY
    this.d.onDropSlow?.(bytes)
    c.ws.close(1008, `slow consumer: ${bytes} bytes unsent, limit ${this.d.maxBufferedBytes}`)
    const ws = c.ws
    setTimeout(() => ws.terminate(), 1000).unref()
    this.detach(c)
  }

  // ——— database changes ———

  /** Queues a change for delivery (commit order kept). */
  deliver(change: Change): void {
    if (this.pgMembers.size === 0) return
    // Fast path: nothing queued and every group's visibility known from cache (no per-row
    // query needed): deliver now, without a promise per change.
    if (this.pending.length === 0 && !this.running && this.d.visibleGroupsCached && this.deliverSync(change)) return
    this.pending.push(change)
    this.kick()
  }

  private kick(): void {
    this.running ??= this.deliverPending().finally(() => {
      this.running = undefined
      if (this.pending.length > 0) this.kick()
    })
  }

  /** Resolves when every queued change has been sent. */
  drained(): Promise<void> {
    return this.running ?? Promise.resolve()
  }

  private async deliverPending(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, MAX_BATCH)
      this.inFlight = batch.length
      try {
        const items = batch.map((change) => ({ change, hits: this.match(change) })).filter((x) => x.hits.length > 0)
        const answers = items.length > 0 ? await this.d.visibleBatch(items.map((x) => ({ change: x.change, groups: this.groups(x.hits) }))) : []
        items.forEach((x, i) => this.send_(x.change, x.hits, answers[i] ?? new Set()))
      } catch (err) {
        this.d.onDeliveryError?.(err as Error)
      } finally {
        this.inFlight = 0
      }
    }
  }

  private deliverSync(ch: Change): boolean {
    const hits = this.match(ch)
    if (hits.length === 0) return true
    const allowed = this.d.visibleGroupsCached!(ch, this.groups(hits))
    if (!allowed) return false
    this.send_(ch, hits, allowed)
    return true
  }

  /**
   * Which members a change goes to, with the ids of their matching bindings. The members
   * whose matching bindings have no filter are found once per (relation, event type) and
   * kept until a subscription comes or goes; only filtered bindings are evaluated per row.
   */
  private match(ch: Change): Hit[] {
    const rel = ch.relation
    let byType = this.plans.get(rel)
    if (!byType) this.plans.set(rel, (byType = new Map()))
    let plan = byType.get(ch.type)
    if (!plan || plan.version !== this.membersVersion) byType.set(ch.type, (plan = this.plan(rel, ch.type)))
    const row = ch.type === 'DELETE' ? ch.oldRecord : ch.record
    if (!row) return []
    if (plan.filtered.length === 0) return plan.fixed
    const typeOf = (col: string) => rel.columns.find((c) => c.name === col)?.type
    const hits = plan.fixed.slice()
    for (const { feed, bindings } of plan.filtered) {
      let ids: number[] | undefined
      for (const b of bindings) if (!b.filter || matchFilter(b.filter, row, typeOf)) (ids ??= []).push(b.id)
      if (ids) hits.push({ feed, ids })
    }
    return hits
  }

  /**
   * Which feeds get a relation's changes of one type, with the ids of their matching bindings:
   * computed once per subscription change, over feeds (members of a feed share bindings).
   */
  private plan(rel: Relation, type: Change['type']): MatchPlan {
    const fixed: Hit[] = []
    const filtered: MatchPlan['filtered'] = []
    for (const feed of this.feeds.values()) {
      const bindings = feed.bindings.filter(
        (b) => (b.event === '*' || b.event === type) && (b.schema === '*' || b.schema === rel.schema) && (b.table === undefined || b.table === '*' || b.table === rel.table),
      )
      if (bindings.length === 0) continue
      // DELETE events pass every filter, as in Supabase Realtime: an RLS-bound subscriber gets
      // the key columns only, and whether it receives the event must not tell what the
      // deleted row held either.
      if (type === 'DELETE' || bindings.every((b) => !b.filter)) fixed.push({ feed, ids: bindings.map((b) => b.id) })
      else filtered.push({ feed, bindings })
    }
    return { version: this.membersVersion, fixed, filtered }
  }

  private groups(hits: Hit[]): VisibilityGroup[] {
    const cached = this.groupsOf.get(hits)
    if (cached) return cached
    const groups = new Map<string, VisibilityGroup>()
    for (const { feed } of hits) for (const [key, g] of feed.groups) if (!groups.has(key)) groups.set(key, { key, role: g.claims.role, claims: g.claims })
    const out = [...groups.values()]
    this.groupsOf.set(hits, out)
    return out
  }

  private send_(ch: Change, hits: Hit[], allowed: Set<string>): void {
    const rel = ch.relation
    // The change's JSON is built once, from cached pieces (relation, commit time), and encoded
    // to bytes once; each distinct frame (topic, join ref, binding ids) is that buffer between a
    // cached prefix and suffix, built once, and appended once to each feed that gets it.
    // What comes before the rows (relation, commit time, event type) is the same for every
    // change of a kind in a transaction: built once for it.
    const head = this.lastHead
    let dataJson: string
    if (head.rel === rel && head.time === ch.commitTime && head.type === ch.type) dataJson = head.json
    else {
      let relJson = this.relJson.get(rel)
      if (relJson === undefined) {
        relJson = `"schema":${JSON.stringify(rel.schema)},"table":${JSON.stringify(rel.table)},"columns":${JSON.stringify(rel.columns.map((c) => ({ name: c.name, type: c.type })))}`
        this.relJson.set(rel, relJson)
      }
      dataJson = `{${relJson},"commit_timestamp":${JSON.stringify(new Date(ch.commitTime).toISOString())},"eventType":"${ch.type}","type":"${ch.type}","errors":null`
      this.lastHead = { rel, time: ch.commitTime, type: ch.type, json: dataJson }
    }
    if (ch.record) dataJson += `,"record":${rowJson(rel, ch.record)}`
    if (ch.type !== 'INSERT') dataJson += `,"old_record":${rowJson(rel, ch.oldRecord ?? keyColumns(rel, ch.record))}`
    dataJson += '}'
    const isDelete = ch.type === 'DELETE'
    let frames: ChangeFrames | undefined
    let sent = 0
    for (let h = 0; h < hits.length; h++) {
      const { feed, ids } = hits[h]!
      const suffix = feed.vsn === '2.0.0' ? SUFFIX_V2 : SUFFIX_V1
      // How the feed's groups see this row: all alike (the usual case: one append for every
      // member), none, or differently (member by member).
      let seen = 0
      let reducedN = 0
      for (const g of feed.groups.keys()) {
        if (!allowed.has(g)) continue
        seen++
        // A DELETE on an RLS table: groups bound by RLS get the key columns only (see rls.ts).
        if (isDelete && allowed.has(`${g}${KEYS_ONLY}`)) reducedN++
      }
      if (seen === 0) continue
      if (seen === feed.groups.size && (reducedN === 0 || reducedN === seen)) {
        const reduced = reducedN > 0
        const prefix = this.changePrefix(feed, ids, reduced)
        // One feed gets this change (one subscription: the common case): its frame is encoded
        // straight into the feed's log. Several: the JSON is encoded once, each frame built once.
        if (hits.length === 1 && !reduced) this.appendFeedText(feed, prefix, dataJson, suffix)
        else this.appendFeed(feed, (frames ??= new ChangeFrames(ch, dataJson)).frame(prefix, reduced, suffix))
        sent += feed.members.size
        continue
      }
      frames ??= new ChangeFrames(ch, dataJson)
      for (const m of feed.members) {
        if (!allowed.has(m.gkey)) continue
        const reduced = isDelete && allowed.has(`${m.gkey}${KEYS_ONLY}`)
        if (this.sendFrame(m.client, frames.frame(this.changePrefix(feed, ids, reduced), reduced, suffix))) sent++
      }
    }
    if (sent > 0) {
      trace?.queued(ch, this.appended)
      this.delivered(sent, ch.commitTime)
    }
  }

  /**
   * The bytes of a postgres_changes frame before its data (`[join_ref,null,topic,
   * "postgres_changes",{"ids":[…],"data":`), cached per feed and shared by every feed with the
   * same join ref, topic and binding ids (so equal frames are found by identity).
   */
  private changePrefix(f: Feed, ids: number[], reduced: boolean): Buffer {
    const cached = reduced ? f.prefixKeys : f.prefix
    if (cached && sameIds(cached.ids, ids)) return cached.buf
    const jr = JSON.stringify(f.joinRef)
    const topic = JSON.stringify(f.topic)
    const text =
      f.vsn === '2.0.0'
        ? `[${jr},null,${topic},"postgres_changes",{"ids":${JSON.stringify(ids)},"data":`
        : `{"join_ref":${jr},"ref":null,"topic":${topic},"event":"postgres_changes","payload":{"ids":${JSON.stringify(ids)},"data":`
    // Keys-only frames get a prefix object of their own (a distinct identity, same bytes).
    const key = `${reduced ? 'k' : 'f'}${text}`
    let buf = this.prefixes.get(key)
    if (buf === undefined) {
      if (this.prefixes.size >= 100_000) this.prefixes.clear()
      this.prefixes.set(key, (buf = Buffer.from(text)))
    }
    const entry = { ids: ids.slice(), buf }
    if (reduced) f.prefixKeys = entry
    else f.prefix = entry
    return buf
  }

  /**
   * Delivery accounting (metrics, commit → send latency): once per transaction, not per change
   * (the changes of one commit share its commit time), when its last frame has been written.
   */
  private delivered(n: number, commitTime: number): void {
    const last = this.acct[this.acct.length - 1]
    if (last && last.commitTime === commitTime) {
      last.n += n
      last.ticket = this.appended
    } else this.acct.push({ n, commitTime, ticket: this.appended })
    // Frames written at once (64 KiB) leave nothing queued: a slice still reports them.
    this.scheduleFlush()
  }

  private reportDelivered(): void {
    let i = 0
    while (i < this.acct.length && this.acct[i]!.ticket <= this.taken) {
      const { n, commitTime } = this.acct[i++]!
      this.d.onDelivered?.(n, this.now() - commitTime)
    }
    if (i > 0) this.acct.splice(0, i)
  }
}

function sameIds(a: number[], b: number[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * One change's frames: its JSON encoded to bytes once (and its keys-only form for subscribers
 * bound by RLS to a DELETE's key columns), each distinct frame (a prefix: topic, join ref,
 * binding ids) built once and shared by every feed and client that gets it.
 */
class ChangeFrames {
  private data: Buffer | undefined
  private keysOnly: Buffer | undefined
  private readonly frames = new Map<Buffer, Buffer>()

  constructor(
    private readonly ch: Change,
    private readonly json: string,
  ) {}

  frame(prefix: Buffer, reduced: boolean, suffix: Buffer): Buffer {
    let frame = this.frames.get(prefix)
    if (frame === undefined) {
      const rel = this.ch.relation
      const body = reduced
        ? (this.keysOnly ??= Buffer.from(`${this.json.slice(0, this.json.lastIndexOf(',"old_record":'))},"old_record":${rowJson(rel, keyColumns(rel, this.ch.oldRecord))}}`))
        : (this.data ??= Buffer.from(this.json))
      frame = joinFrame(prefix, body, suffix)
      this.frames.set(prefix, frame)
    }
    return frame
  }
}

const SUFFIX_V2 = Buffer.from('}]')
const SUFFIX_V1 = Buffer.from('}}')

/** A WebSocket text frame of prefix + body + suffix (bytes copied once). */
function joinFrame(prefix: Buffer, body: Buffer, suffix: Buffer): Buffer {
  const len = prefix.length + body.length + suffix.length
  const head = frameHead(len)
  const buf = Buffer.allocUnsafe(head + len)
  writeFrameHead(buf, 0, len)
  prefix.copy(buf, head)
  body.copy(buf, head + prefix.length)
  suffix.copy(buf, head + prefix.length + body.length)
  return buf
}

/** Suffix of a group key in a visibility answer: the group gets a DELETE's key columns only. */
export const KEYS_ONLY = '\u0000keys'

const FLUSH_BYTES = 64 * 1024
/** Unsent bytes of a feed's full chunk that are written when the next chunk starts (see writeFullChunk). */
const SPILL_FLUSH_BYTES = 16 * 1024
/** Clients per native write batch (a power of 2: the slice checks its time every BATCH clients). */
const BATCH = 16
/** How long one flush slice writes before yielding to the event loop (see flushSlice). */
const SLICE_MS = 0.5
/** Changes checked for visibility together (one query per group per batch). */
const MAX_BATCH = 1000

/** One unmasked, unfragmented WebSocket text frame (RFC 6455 §5.2), as a server sends it. */
export function textFrame(text: string): Buffer {
  const len = Buffer.byteLength(text)
  const head = frameHead(len)
  const buf = Buffer.allocUnsafe(head + len)
  writeFrameHead(buf, 0, len)
  buf.write(text, head, 'utf8')
  return buf
}

function keyColumns(rel: Change['relation'], row: Record<string, string | null> | null): Record<string, string | null> {
  const out: Record<string, string | null> = {}
  if (!row) return out
  const names = rel.primaryKey ?? rel.columns.filter((c) => c.key).map((c) => c.name)
  for (const n of names) if (n in row) out[n] = row[n] ?? null
  return out
}

/**
 * A binding's id is a hash of its parameters (as Supabase's phash2 of the params): identical
 * subscriptions get identical ids, so one change sends identical frames, built once.
 */
function bindingId(event: string, schema: string, table: string | undefined, filter: string | undefined): number {
  const h = createHash('sha1').update(JSON.stringify([event, schema, table ?? null, filter ?? null])).digest()
  return h.readUInt32BE(0) & 0x7fffffff
}

function parseBindings(v: unknown): Binding[] {
  if (v === undefined || v === null) return []
  if (!Array.isArray(v)) throw new Error('config.postgres_changes must be a list')
  if (v.length > 100) throw new Error('at most 100 postgres_changes bindings per channel')
  return v.map((raw): Binding => {
    if (!isObj(raw)) throw new Error('each postgres_changes binding is an object {event, schema, table?, filter?}')
    const event = raw.event ?? '*'
    if (event !== '*' && event !== 'INSERT' && event !== 'UPDATE' && event !== 'DELETE') throw new Error(`event must be *, INSERT, UPDATE or DELETE, not ${JSON.stringify(event)}`)
    if (typeof raw.schema !== 'string' || raw.schema === '') throw new Error('schema is required')
    if (raw.table !== undefined && raw.table !== null && typeof raw.table !== 'string') throw new Error('table must be a string')
    if (raw.filter !== undefined && raw.filter !== null && typeof raw.filter !== 'string') throw new Error('filter must be a string')
    let filter: Filter | undefined
    const filterText = typeof raw.filter === 'string' && raw.filter !== '' ? raw.filter : undefined
    if (filterText !== undefined) {
      if (typeof raw.table !== 'string' || raw.table === '*') throw new Error('a filter needs a table')
      try {
        filter = parseFilter(filterText)
      } catch (err) {
        if (err instanceof FilterError) throw new Error(err.message, { cause: err })
        throw err
      }
    }
    const table = typeof raw.table === 'string' ? raw.table : undefined
    return { id: bindingId(event, raw.schema, table, filterText), event, schema: raw.schema, table: typeof raw.table === 'string' ? raw.table : undefined, filterText, filter }
  })
}

/**
 * Private channels are authorized by the token: claim `topics`, a list of channel names a
 * holder may join privately (a trailing `*` matches a prefix, e.g. "room:*").
 */
export function topicAllowed(claims: Claims, subTopic: string): boolean {
  const topics = claims.topics
  if (!Array.isArray(topics)) return false
  return topics.some((t) => typeof t === 'string' && (t === subTopic || (t.endsWith('*') && subTopic.startsWith(t.slice(0, -1)))))
}

function groupIn(f: Feed, m: Member): void {
  const g = f.groups.get(m.gkey)
  if (g) g.n++
  else f.groups.set(m.gkey, { n: 1, claims: m.claims })
}

function groupOut(f: Feed, gkey: string): void {
  const g = f.groups.get(gkey)
  if (g && --g.n === 0) f.groups.delete(gkey)
}

const groupKeys = new WeakMap<Claims, string>()

/** Role + claims (without exp/iat): subscribers with the same key share one RLS check. */
function groupKey(claims: Claims): string {
  let k = groupKeys.get(claims)
  if (k === undefined) {
    const { exp: _e, iat: _i, ...rest } = claims
    k = `${claims.role}\u0000${JSON.stringify(Object.keys(rest).sort().map((x) => [x, rest[x]]))}`
    groupKeys.set(claims, k)
  }
  return k
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Lists the member in its feed's waiting list, once. Entries of members that left (or left and
 * came back) stay until the next append skips them; on a feed that gets no changes while its
 * subscribers come and go, they are dropped once they outnumber the members.
 */
function markWaiting(f: Feed, m: Member): void {
  if (m.waiting) return
  m.waiting = true
  f.waiting.push(m)
  if (f.waiting.length <= 2 * f.members.size + 16) return
  const live: Member[] = []
  for (const x of f.waiting) {
    if (!x.waiting || x.feed !== f) continue
    x.waiting = false // a member listed twice is kept once
    live.push(x)
  }
  for (const x of live) x.waiting = true
  f.waiting = live
}

/** Every member of the feed is at its log's end. */
function everyWaiting(f: Feed): boolean {
  for (const m of f.members) if (!m.waiting) return false
  return true
}
