// A loopback TCP proxy to Postgres that a test can take down (refusing and cutting) and bring back.
import net from 'node:net'

export interface TcpProxy {
  port: number
  /** Client connections open now: what the client side holds, which the server learns of later. */
  openConnections(): number
  /** Client connections accepted since the start. */
  acceptedConnections(): number
  down(): void
  up(): void
  close(): Promise<void>
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  let isUp = true
  let accepted = 0
  const open = new Set<net.Socket>()
  const clients = new Set<net.Socket>()
  const server = net.createServer((client) => {
    if (!isUp) return client.destroy()
    accepted++
    clients.add(client)
    client.on('close', () => clients.delete(client))
    const upstream = net.connect(targetPort, targetHost)
    for (const s of [client, upstream]) {
      open.add(s)
      s.on('close', () => open.delete(s))
      s.on('error', () => {})
    }
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    port,
    openConnections: () => clients.size,
    acceptedConnections: () => accepted,
    down() {
      isUp = false
      for (const s of open) s.destroy()
    },
    up() {
      isUp = true
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy()
        server.close(() => resolve())
      }),
  }
}
