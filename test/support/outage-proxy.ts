// A loopback TCP proxy to Postgres that can go down (open connections cut, new ones refused) and come back on the same port.
import net from 'node:net'
import { listenInPlaceOf } from './loopback-listen.ts'
import { connectUpstream } from './upstream-connection.ts'

export interface OutageProxy {
  /** `target` with the proxy's host and port. */
  url: string
  /** As a database restart looks to a client: open connections end, new ones are refused (ECONNREFUSED). */
  down(): Promise<void>
  /** New connections pass again, on the same port. */
  up(): Promise<void>
  close(): Promise<void>
}

export async function startOutageProxy(target: string): Promise<OutageProxy> {
  const t = new URL(target)
  const open = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = connectUpstream(client, t, open)
    client.pipe(upstream)
    upstream.pipe(client)
  })
  const { url, port } = await listenInPlaceOf(server, target)
  const stop = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve())
      for (const s of open) s.destroy()
    })
  return {
    url,
    down: stop,
    // Back on the same port: a client's URL still reaches it.
    up: () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve())),
    close: async () => {
      if (server.listening) await stop()
    },
  }
}
