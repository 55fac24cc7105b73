// A test proxy's connection onward: the client's socket and one to the target, each ending the other, both tracked while open.
import net from 'node:net'

/**
 * Connects to `target`'s host and port for `client`. Each socket is in `open` until it closes, and
 * either one's close (or error) closes both: a server gone ends its client, as without the proxy.
 */
export function connectUpstream(
  client: net.Socket,
  target: URL,
  open: Set<net.Socket>,
): net.Socket {
  const upstream = net.connect(Number(target.port), target.hostname)
  for (const s of [client, upstream]) {
    open.add(s)
    s.on('error', () => {})
    s.on('close', () => {
      open.delete(s)
      client.destroy()
      upstream.destroy()
    })
  }
  return upstream
}
