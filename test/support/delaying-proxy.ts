// A loopback TCP proxy to Postgres that forwards each direction's bytes late by a settable delay, in order: a slow database in bursts.
import net from 'node:net'
import { listenInPlaceOf } from './loopback-listen.ts'

export interface Delays {
  /** How late the server's bytes (answers, notifications) reach the client. */
  answerMs: number
  /** How late the client's bytes (statements) reach the server: the statement runs that late. */
  requestMs: number
}

export interface ProxiedStatement {
  /** The connection it came on: 1 for the first the proxy accepted. */
  connection: number
  text: string
}

export interface DelayingProxy {
  /** `target` with the proxy's host and port. */
  url: string
  /** Bytes that arrive from now on are forwarded this late; what was queued keeps its time. */
  delay(d: Delays): void
  /** How many connections the clients opened through the proxy so far. */
  connections(): number
  /**
   * The statements the clients sent so far, in order: each simple Query, and each Execute with the
   * text of the statement it runs (a prepared one's text as its Parse gave it).
   */
  statements(): readonly ProxiedStatement[]
  close(): void
}

/**
 * Each connection connects onward anew (a restarted server is reached again). A direction's bytes
 * keep their order whatever the delay does meanwhile, and a side's close reaches the other side
 * after the bytes it sent before it, as without the proxy.
 */
export async function startDelayingProxy(target: string): Promise<DelayingProxy> {
  const u = new URL(target)
  const sockets = new Set<net.Socket>()
  let delays: Delays = { answerMs: 0, requestMs: 0 }
  let connections = 0
  const statements: ProxiedStatement[] = []
  const server = net.createServer((client) => {
    const connection = ++connections
    const messages = clientMessages((text) => statements.push({ connection, text }))
    const upstream = net.connect(Number(u.port), u.hostname)
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {})
    }
    const toServer = delayedWrites(upstream, () => delays.requestMs)
    const toClient = delayedWrites(client, () => delays.answerMs)
    client.on('data', (b: Buffer) => {
      messages.read(b)
      toServer.write(b)
    })
    upstream.on('data', (b: Buffer) => toClient.write(b))
    client.on('close', () => {
      sockets.delete(client)
      toServer.end()
    })
    upstream.on('close', () => {
      sockets.delete(upstream)
      toClient.end()
    })
  })
  const { url } = await listenInPlaceOf(server, target)
  return {
    url,
    delay(d) {
      delays = { ...d }
    },
    connections: () => connections,
    statements: () => [...statements],
    close() {
      for (const s of sockets) s.destroy()
      server.close()
    },
  }
}

/** Writes to `to`, each chunk `delayMs()` after it was handed in but never before an earlier one. */
function delayedWrites(to: net.Socket, delayMs: () => number) {
  // Due times never decrease along the queue: one timer, for its head, drains it in order.
  const queue: { due: number; bytes: Buffer | null }[] = []
  let timer: ReturnType<typeof setTimeout> | null = null
  const drain = () => {
    timer = null
    const now = performance.now()
    while (queue.length > 0 && queue[0]!.due <= now) {
      const { bytes } = queue.shift()!
      if (bytes === null) to.destroy()
      else if (!to.destroyed) to.write(bytes)
    }
    if (queue.length > 0) timer = setTimeout(drain, queue[0]!.due - now)
  }
  const push = (bytes: Buffer | null) => {
    const now = performance.now()
    const due = Math.max(now + delayMs(), queue.at(-1)?.due ?? now)
    queue.push({ due, bytes })
    if (timer === null) {
      if (due <= now) drain()
      else timer = setTimeout(drain, due - now)
    }
  }
  return { write: (b: Buffer) => push(b), end: () => push(null) }
}

// The protocol's untyped messages that may come before the startup message.
const SSL_REQUEST = 80877103
const GSS_ENCRYPTION_REQUEST = 80877104

/**
 * Reads a client's side of the Postgres protocol as it arrives and calls `statement` with each
 * statement run: a simple Query's text, or at an Execute the text its Bind's statement was parsed
 * with. The startup message has no type byte. A connection that asks for TLS or GSS encryption is
 * not read further (no test asks for either).
 */
function clientMessages(statement: (text: string) => void) {
  let pending = Buffer.alloc(0)
  let started = false
  let encrypted = false
  // Prepared statements' texts by name ('' the unnamed one), and the text bound to the portal.
  const parsed = new Map<string, string>()
  let bound = ''
  const cstrings = (body: Buffer, n: number) => {
    const out: string[] = []
    let at = 0
    while (out.length < n && at < body.length) {
      const end = body.indexOf(0, at)
      out.push(body.toString('utf8', at, end < 0 ? body.length : end))
      at = end < 0 ? body.length : end + 1
    }
    return out
  }
  const message = (type: number, body: Buffer) => {
    if (type === 0x51 /* Q */) statement(cstrings(body, 1)[0] ?? '')
    else if (type === 0x50 /* P */) {
      const [name = '', text = ''] = cstrings(body, 2)
      parsed.set(name, text)
    } else if (type === 0x42 /* B */) bound = parsed.get(cstrings(body, 2)[1] ?? '') ?? ''
    else if (type === 0x45 /* E */) statement(bound)
  }
  return {
    read(b: Buffer) {
      if (encrypted) return
      pending = Buffer.concat([pending, b])
      for (;;) {
        const head = started ? 5 : 4
        if (pending.length < head) return
        const length = started ? pending.readInt32BE(1) + 1 : pending.readInt32BE(0)
        if (pending.length < length) return
        if (!started) {
          const code = length >= 8 ? pending.readInt32BE(4) : 0
          if (code === SSL_REQUEST || code === GSS_ENCRYPTION_REQUEST) encrypted = true
          else started = true
        } else message(pending[0]!, pending.subarray(5, length))
        pending = pending.subarray(length)
        if (encrypted) return
      }
    },
  }
}
