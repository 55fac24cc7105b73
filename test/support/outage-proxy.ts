// A loopback TCP proxy to Postgres that can go down (open connections cut, new ones refused) and come back on the same port.
import net from 'node:net'

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
    const upstream = net.connect(Number(t.port), t.hostname)
    for (const s of [client, upstream]) {
      open.add(s)
      s.on('error', () => {})
      s.on('close', () => {
        open.delete(s)
        client.destroy()
        upstream.destroy()
      })
    }
    client.pipe(upstream)
    upstream.pipe(client)
  })
  const listen = (port: number) =>
    new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()))
  await listen(0)
  const port = (server.address() as net.AddressInfo).port
  const url = new URL(target)
  url.hostname = '127.0.0.1'
  url.port = String(port)
  const stop = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve())
      for (const s of open) s.destroy()
    })
  return {
    url: url.toString(),
    down: stop,
    up: () => listen(port),
    close: async () => {
      if (server.listening) await stop()
    },
  }
}
