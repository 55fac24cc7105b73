// A loopback TCP proxy to Postgres that holds a connection's bytes at a text until another connection opens: shows what a client opens while it waits.
import net from 'node:net'
import { listenInPlaceOf } from './loopback-listen.ts'
import { connectUpstream } from './upstream-connection.ts'

export interface HoldingProxy {
  /** `target` with the proxy's host and port. */
  url: string
  /**
   * The first connection whose client sends bytes containing `text` has them (and what follows)
   * held there, not forwarded, until the proxy accepts another connection; the others pass.
   */
  holdOnceAt(text: string): void
  /** Whether a hold was released by another connection (false while held, or never held). */
  released(): boolean
  close(): void
}

export async function startHoldingProxy(target: string): Promise<HoldingProxy> {
  const u = new URL(target)
  const sockets = new Set<net.Socket>()
  let trigger: string | null = null
  let held: { upstream: net.Socket; bytes: Buffer[] } | null = null
  let released = false
  const server = net.createServer((client) => {
    if (held) {
      for (const b of held.bytes) held.upstream.write(b)
      held = null
      released = true
    }
    const upstream = connectUpstream(client, u, sockets)
    let mine: { upstream: net.Socket; bytes: Buffer[] } | null = null
    client.on('data', (b: Buffer) => {
      if (mine && held === mine) {
        mine.bytes.push(b)
        return
      }
      if (trigger !== null && b.includes(trigger)) {
        trigger = null
        mine = { upstream, bytes: [b] }
        held = mine
        return
      }
      upstream.write(b)
    })
    upstream.on('data', (b) => client.write(b))
    // Either socket's close ends both (connectUpstream); what this one held goes with them.
    for (const s of [client, upstream])
      s.on('close', () => {
        if (held === mine) held = null
      })
  })
  const { url } = await listenInPlaceOf(server, target)
  return {
    url,
    holdOnceAt(text) {
      trigger = text
    },
    released: () => released,
    close() {
      for (const s of sockets) s.destroy()
      server.close()
    },
  }
}
