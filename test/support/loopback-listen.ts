// Puts a test's stand-in server (a proxy, a pooler) on a free loopback port, and says the URL that reaches it in place of its target.
import type net from 'node:net'

/** `server` listening on 127.0.0.1 at a free port; `target` with that host and port instead of its own. */
export async function listenInPlaceOf(
  server: net.Server,
  target: string,
): Promise<{ url: string; port: number }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  const url = new URL(target)
  url.hostname = '127.0.0.1'
  url.port = String(port)
  return { url: url.toString(), port }
}
