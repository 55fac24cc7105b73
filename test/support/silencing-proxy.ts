// A loopback TCP proxy to Postgres whose connections can go silent (a dead NAT entry) yet still pass a close.
import net from 'node:net'
import { listenInPlaceOf } from './loopback-listen.ts'
import { connectUpstream } from './upstream-connection.ts'

export interface SilencingProxy {
  /** `target` with the proxy's host and port. */
  url: string
  /** Connections open now forward nothing more, either way; new ones still pass. */
  silence(): void
  /** A black hole from now on: the open connections go silent, and so does each new one (accepted, never answered). */
  blackhole(): void
  /**
   * The first connection whose client sends bytes containing `text` goes silent there (those bytes
   * are not forwarded); the others pass.
   */
  silenceOnceAt(text: string): void
  /** Connections open now (closed on either side ends both). */
  open(): number
  /** Of those, the silent ones. */
  silent(): number
  close(): void
}

/**
 * Unlike a frozen socket, a silent one is still read: a close from either side (FIN or reset) ends
 * the other side too, so a test sees whether the client's close reached the server.
 */
export async function startSilencingProxy(target: string): Promise<SilencingProxy> {
  const u = new URL(target)
  const pairs = new Set<{ silent: boolean }>()
  const sockets = new Set<net.Socket>()
  let trigger: string | null = null
  let dark = false
  const server = net.createServer((client) => {
    const upstream = connectUpstream(client, u, sockets)
    const pair = { silent: dark }
    pairs.add(pair)
    // Either socket's close ends both (connectUpstream): the pair is open no longer.
    for (const s of [client, upstream]) s.on('close', () => pairs.delete(pair))
    client.on('data', (b) => {
      if (trigger !== null && !pair.silent && b.includes(trigger)) {
        trigger = null
        pair.silent = true
      }
      if (!pair.silent) upstream.write(b)
    })
    upstream.on('data', (b) => {
      if (!pair.silent) client.write(b)
    })
  })
  const { url } = await listenInPlaceOf(server, target)
  return {
    url,
    silence() {
      for (const p of pairs) p.silent = true
    },
    blackhole() {
      dark = true
      for (const p of pairs) p.silent = true
    },
    silenceOnceAt(text) {
      trigger = text
    },
    open: () => pairs.size,
    silent: () => [...pairs].filter((p) => p.silent).length,
    close() {
      for (const s of sockets) s.destroy()
      server.close()
    },
  }
}
