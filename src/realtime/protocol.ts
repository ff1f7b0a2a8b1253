/**
 * Phoenix channel frames as realtime-js speaks them.
 *
 * vsn 1.0.0: a JSON object `{join_ref, ref, topic, event, payload}`.
 * vsn 2.0.0: a JSON array `[join_ref, ref, topic, event, payload]`, plus one binary frame
 * kind from the client, "user broadcast push" (kind 3): header bytes
 * `kind, len(join_ref), len(ref), len(topic), len(event), len(meta), encoding` then those
 * strings and the payload (encoding 1 = JSON, 0 = raw bytes). The server answers with JSON
 * arrays only (a broadcast is sent as `[null, null, topic, "broadcast", {type, event, payload}]`,
 * which realtime-js decodes like any message).
 */
export type Vsn = '1.0.0' | '2.0.0'

export interface Frame {
  joinRef: string | null
  ref: string | null
  topic: string
  event: string
  payload: Record<string, unknown>
}

export class ProtocolError extends Error {}

const KIND_USER_BROADCAST_PUSH = 3

export function decodeFrame(data: Buffer, isBinary: boolean, vsn: Vsn): Frame {
  if (isBinary) return decodeBinary(data)
  let v: unknown
  try {
    v = JSON.parse(data.toString('utf8'))
  } catch {
    throw new ProtocolError('malformed frame: not JSON')
  }
  let f: { joinRef: unknown; ref: unknown; topic: unknown; event: unknown; payload: unknown }
  if (Array.isArray(v)) {
    if (v.length !== 5) throw new ProtocolError('malformed frame: a vsn 2.0.0 message is an array of 5 elements')
    f = { joinRef: v[0], ref: v[1], topic: v[2], event: v[3], payload: v[4] }
  } else if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>
    f = { joinRef: o.join_ref ?? null, ref: o.ref ?? null, topic: o.topic, event: o.event, payload: o.payload }
  } else {
    throw new ProtocolError(`malformed frame: expected a ${vsn === '2.0.0' ? 'JSON array' : 'JSON object'}`)
  }
  if (typeof f.topic !== 'string' || f.topic.length === 0 || f.topic.length > 255) throw new ProtocolError('malformed frame: topic must be a string of 1–255 characters')
  if (typeof f.event !== 'string' || f.event.length === 0 || f.event.length > 255) throw new ProtocolError('malformed frame: event must be a string of 1–255 characters')
  if (f.joinRef !== null && typeof f.joinRef !== 'string') throw new ProtocolError('malformed frame: join_ref must be a string or null')
  if (f.ref !== null && typeof f.ref !== 'string') throw new ProtocolError('malformed frame: ref must be a string or null')
  const payload = f.payload ?? {}
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw new ProtocolError('malformed frame: payload must be an object')
  return { joinRef: f.joinRef, ref: f.ref, topic: f.topic, event: f.event, payload: payload as Record<string, unknown> }
}

function decodeBinary(buf: Buffer): Frame {
  if (buf.length < 7) throw new ProtocolError('malformed binary frame: too short')
  const kind = buf[0]
  if (kind !== KIND_USER_BROADCAST_PUSH) throw new ProtocolError(`malformed binary frame: unsupported kind ${kind}`)
  const [jl, rl, tl, el, ml, enc] = [buf[1]!, buf[2]!, buf[3]!, buf[4]!, buf[5]!, buf[6]!]
  let o = 7
  const take = (n: number): string => {
    if (o + n > buf.length) throw new ProtocolError('malformed binary frame: truncated header')
    const s = buf.subarray(o, o + n).toString('utf8')
    o += n
    return s
  }
  const joinRef = take(jl)
  const ref = take(rl)
  const topic = take(tl)
  const event = take(el)
  const meta = take(ml)
  const body = buf.subarray(o)
  if (topic.length === 0 || event.length === 0) throw new ProtocolError('malformed binary frame: empty topic or event')
  let userPayload: unknown
  if (enc === 1) {
    try {
      userPayload = JSON.parse(body.toString('utf8'))
    } catch {
      throw new ProtocolError('malformed binary frame: payload is not JSON')
    }
  } else {
    // Raw bytes travel on as base64; realtime-js JSON clients see a string.
    userPayload = body.toString('base64')
  }
  const payload: Record<string, unknown> = { type: 'broadcast', event, payload: userPayload }
  if (meta) {
    try {
      payload.meta = JSON.parse(meta)
    } catch {
      throw new ProtocolError('malformed binary frame: metadata is not JSON')
    }
  }
  return { joinRef: joinRef || null, ref: ref || null, topic, event: 'broadcast', payload }
}

export function encodeFrame(vsn: Vsn, joinRef: string | null, ref: string | null, topic: string, event: string, payload: unknown): string {
  if (vsn === '2.0.0') return JSON.stringify([joinRef, ref, topic, event, payload])
  return JSON.stringify({ join_ref: joinRef, ref, topic, event, payload })
}

export function parseVsn(v: string | null): Vsn | undefined {
  if (v === null || v === '1.0.0') return '1.0.0'
  if (v === '2.0.0') return '2.0.0'
  return undefined
}
