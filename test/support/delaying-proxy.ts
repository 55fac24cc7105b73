// A loopback TCP proxy to Postgres that forwards each direction's bytes late by a settable delay, in order: a slow database in bursts.
import net from 'node:net'
import { listenInPlaceOf } from './loopback-listen.ts'

export interface Delays {
  /** How late the server's bytes (answers, notifications) reach the client. */
  answerMs: number
  /** How late the client's bytes (statements) reach the server: the statement runs that late. */
  requestMs: number
}

export interface DelayingProxy {
  /** `target` with the proxy's host and port. */
  url: string
  /** Bytes that arrive from now on are forwarded this late; what was queued keeps its time. */
  delay(d: Delays): void
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
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(u.port), u.hostname)
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {})
    }
    const toServer = delayedWrites(upstream, () => delays.requestMs)
    const toClient = delayedWrites(client, () => delays.answerMs)
    client.on('data', (b: Buffer) => toServer.write(b))
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
