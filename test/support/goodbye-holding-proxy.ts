// A loopback TCP proxy to Postgres that can hold back what clients send (a goodbye the server has not read yet), while the server's bytes and close still reach them.
import net from 'node:net'
import { listenInPlaceOf } from './loopback-listen.ts'

export interface GoodbyeHoldingProxy {
  /** `target` with the proxy's host and port. */
  url: string
  /** From now on the clients' bytes, and their half-close, wait in the proxy, as in a server that has not read them yet. */
  hold(): void
  /** Forwards what was held, and what comes after, in order. */
  release(): void
  /** Calls `f` whenever the server closes a connection, before the client's is closed. */
  onServerClose(f: () => void): void
  close(): void
}

/**
 * Half-open as Postgres is: a client that sent its goodbye (Terminate, then a half-close) still reads
 * what the server sends until the server closes, a FATAL included; the server's close ends the client's.
 */
export async function startGoodbyeHoldingProxy(target: string): Promise<GoodbyeHoldingProxy> {
  const u = new URL(target)
  const sockets = new Set<net.Socket>()
  const closedListeners: (() => void)[] = []
  let holding = false
  const held: { upstream: net.Socket; bytes: Buffer | null }[] = []
  const forward = (upstream: net.Socket, bytes: Buffer | null) => {
    if (bytes === null) upstream.end()
    else upstream.write(bytes)
  }
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ port: Number(u.port), host: u.hostname, allowHalfOpen: true })
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => sockets.delete(s))
    }
    const send = (bytes: Buffer | null) =>
      holding ? held.push({ upstream, bytes }) : forward(upstream, bytes)
    client.on('data', (b: Buffer) => send(b))
    client.on('end', () => send(null))
    upstream.on('data', (b: Buffer) => client.write(b))
    // The server's close (its FIN, or a reset) ends the client's side too, held bytes or not.
    let serverClosed = false
    const closedByServer = () => {
      if (serverClosed) return
      serverClosed = true
      for (const f of closedListeners) f()
      client.end()
      upstream.end()
    }
    upstream.on('end', closedByServer)
    upstream.on('close', closedByServer)
  })
  const { url } = await listenInPlaceOf(server, target)
  return {
    url,
    hold() {
      holding = true
    },
    release() {
      holding = false
      for (const { upstream, bytes } of held.splice(0)) forward(upstream, bytes)
    },
    onServerClose(f) {
      closedListeners.push(f)
    },
    close() {
      for (const s of sockets) s.destroy()
      server.close()
    },
  }
}
