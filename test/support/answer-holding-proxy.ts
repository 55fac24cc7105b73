// A loopback TCP proxy to Postgres that holds back the server's answer to one statement: the statement runs and commits, its client hears of it only later.
import net from 'node:net'
import { listenInPlaceOf } from './loopback-listen.ts'
import { connectUpstream } from './upstream-connection.ts'

export interface AnswerHoldingProxy {
  /** `target` with the proxy's host and port. */
  url: string
  /**
   * The first connection whose client sends bytes containing `text` has everything the server
   * sends it from then on held, not forwarded, until release(); the server runs the statement
   * (and commits it) meanwhile. The other connections pass.
   */
  holdAnswerOnceAt(text: string): void
  /**
   * Whether an answer is held now: true from the statement's sending, which the server may not have
   * run yet (a caller that needs its effects waits for them in the database).
   */
  holding(): boolean
  /** Forwards what was held, and passes that connection's bytes from then on. */
  release(): void
  close(): void
}

export async function startAnswerHoldingProxy(target: string): Promise<AnswerHoldingProxy> {
  const u = new URL(target)
  const sockets = new Set<net.Socket>()
  let trigger: string | null = null
  let held: { client: net.Socket; bytes: Buffer[] } | null = null
  const server = net.createServer((client) => {
    const upstream = connectUpstream(client, u, sockets)
    let mine: { client: net.Socket; bytes: Buffer[] } | null = null
    client.on('data', (b: Buffer) => {
      if (trigger !== null && b.includes(trigger)) {
        trigger = null
        mine = { client, bytes: [] }
        held = mine
      }
      upstream.write(b)
    })
    upstream.on('data', (b: Buffer) => {
      if (mine && held === mine) mine.bytes.push(b)
      else client.write(b)
    })
    // Either socket's close ends both (connectUpstream); what this one held goes with them.
    for (const s of [client, upstream])
      s.on('close', () => {
        if (held === mine) held = null
      })
  })
  const { url } = await listenInPlaceOf(server, target)
  return {
    url,
    holdAnswerOnceAt(text) {
      trigger = text
    },
    holding: () => held !== null,
    release() {
      const h = held
      held = null
      if (h) for (const b of h.bytes) h.client.write(b)
    },
    close() {
      for (const s of sockets) s.destroy()
      server.close()
    },
  }
}
