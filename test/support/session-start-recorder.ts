// A loopback TCP proxy to Postgres that notes each session's start: its application_name, and the DateStyle the server reports to it.
import net from 'node:net'
import { listenInPlaceOf } from './loopback-listen.ts'
import { connectUpstream } from './upstream-connection.ts'

export interface SessionStart {
  applicationName: string
  /** As the server reported it when the session started (ParameterStatus), null if it did not. */
  dateStyle: string | null
}

export interface SessionStartRecorder {
  /** `target` with the proxy's host and port: same database, user and password. */
  url: string
  /** The sessions started through the proxy so far (authenticated, ready), of `applicationName` if given. */
  starts(applicationName?: string): SessionStart[]
  close(): Promise<void>
}

const SSL_REQUEST = 80877103
const GSS_REQUEST = 80877104

/**
 * The server reports DateStyle (a GUC_REPORT setting) to every client at the end of its start, as the
 * session has it then: after the client's startup parameters and the role's and database's settings.
 * Read off the wire, it says what a session of a client we cannot reach (a one-shot pool inside
 * `status`) starts with, on every Postgres version (a login event trigger would need 17+).
 */
export async function startSessionStartRecorder(target: string): Promise<SessionStartRecorder> {
  const t = new URL(target)
  const starts: SessionStart[] = []
  const open = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = connectUpstream(client, t, open)
    let applicationName = ''
    let dateStyle: string | null = null
    let startup = Buffer.alloc(0)
    const onStartup = (chunk: Buffer) => {
      startup = Buffer.concat([startup, chunk])
      if (startup.length < 8 || startup.length < startup.readInt32BE(0)) return
      const length = startup.readInt32BE(0)
      const code = startup.readInt32BE(4)
      if (code === SSL_REQUEST || code === GSS_REQUEST) {
        // No encryption on loopback: the client goes on in the clear.
        startup = startup.subarray(length)
        client.write('N')
        if (startup.length > 0) onStartup(Buffer.alloc(0))
        return
      }
      const fields = startup.subarray(8, length).toString('utf8').split('\0')
      for (let i = 0; i + 1 < fields.length && fields[i] !== ''; i += 2)
        if (fields[i] === 'application_name') applicationName = fields[i + 1]!
      client.off('data', onStartup)
      upstream.write(startup)
      client.pipe(upstream)
    }
    client.on('data', onStartup)
    // Until the first ReadyForQuery the server's messages are read as they pass: its reports then.
    let pending = Buffer.alloc(0)
    let ready = false
    upstream.on('data', (chunk: Buffer) => {
      client.write(chunk)
      if (ready) return
      pending = Buffer.concat([pending, chunk])
      while (!ready && pending.length >= 5) {
        const size = 1 + pending.readInt32BE(1)
        if (pending.length < size) break
        const type = String.fromCharCode(pending[0]!)
        const body = pending.subarray(5, size)
        pending = pending.subarray(size)
        if (type === 'S') {
          const [name, value] = body.toString('utf8').split('\0')
          if (name === 'DateStyle') dateStyle = value ?? null
        } else if (type === 'Z') {
          ready = true
          starts.push({ applicationName, dateStyle })
        }
      }
    })
  })
  const proxied = await listenInPlaceOf(server, target)
  return {
    url: proxied.url,
    starts: (applicationName) =>
      starts.filter((s) => applicationName === undefined || s.applicationName === applicationName),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy()
        server.close(() => resolve())
      }),
  }
}
