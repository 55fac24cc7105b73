// A loopback stand-in for a transaction-mode pooler (PgBouncer pool_mode=transaction, Supavisor):
// each transaction of a client runs on the next of its server sessions, so a LISTEN lands on one
// session and the statement after it on another, as behind the real thing; like PgBouncer with its
// default settings it refuses a startup parameter it cannot track. Real Postgres behind it.
import net from 'node:net'
import pg from 'pg'
import { listenInPlaceOf } from './loopback-listen.ts'

export interface TransactionPooler {
  /** `url` with the pooler's host and port: same database, user and password. */
  url: string
  close(): Promise<void>
}

const SSL_REQUEST = 80877103
const GSS_REQUEST = 80877104
// The startup parameters PgBouncer accepts unless told to ignore others (ignore_startup_parameters,
// empty by default): any other, e.g. statement_timeout, fails the connection with 08P01.
const ACCEPTED_STARTUP_PARAMETERS = new Set([
  'user',
  'database',
  'application_name',
  'client_encoding',
  'datestyle',
  'timezone',
  'standard_conforming_strings',
])

/** The name/value pairs of a StartupMessage (length, protocol version, then NUL-terminated pairs). */
function startupParameters(startup: Buffer): Map<string, string> {
  const fields = startup.subarray(8).toString('utf8').split('\0')
  const pairs = new Map<string, string>()
  for (let i = 0; i + 1 < fields.length && fields[i] !== ''; i += 2)
    pairs.set(fields[i]!, fields[i + 1]!)
  return pairs
}

/** PgBouncer's FATAL ErrorResponse (08P01), after which it hangs up. */
function refusal(name: string): Buffer {
  return fatal(`unsupported startup parameter: ${name}`)
}

function fatal(text: string): Buffer {
  const field = (code: string, value: string) => Buffer.from(`${code}${value}\0`, 'utf8')
  return message(
    'E',
    Buffer.concat([
      field('S', 'FATAL'),
      field('V', 'FATAL'),
      field('C', '08P01'),
      field('M', text),
      Buffer.from([0]),
    ]),
  )
}

/** Splits a byte stream of Postgres messages (type byte + int32 length) into whole messages. */
function framer(onMessage: (type: number, frame: Buffer) => void) {
  let pending = Buffer.alloc(0)
  return (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk])
    while (pending.length >= 5) {
      const size = 1 + pending.readInt32BE(1)
      if (pending.length < size) break
      const frame = pending.subarray(0, size)
      pending = pending.subarray(size)
      onMessage(frame[0]!, frame)
    }
  }
}

function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5)
  head.write(type, 0, 'latin1')
  head.writeInt32BE(body.length + 4, 1)
  return Buffer.concat([head, body])
}

const parameter = (name: string, value: string) =>
  message('S', Buffer.from(`${name}\0${value}\0`, 'utf8'))

// The parameters PgBouncer tracks per client and sets on each server session it lends the client
// (its varcache): a client's value from its startup message holds on every session.
const TRACKED_PARAMETERS = new Set(['datestyle', 'timezone'])

/** `-c name=value` for each tracked parameter of the client's startup message (spaces escaped). */
function trackedOptions(startup: Map<string, string>): string {
  return [...startup]
    .filter(([name]) => TRACKED_PARAMETERS.has(name.toLowerCase()))
    .map(([name, value]) => `-c ${name}=${value.replaceAll(' ', '\\ ')}`)
    .join(' ')
}

/** A server session of its own, authenticated by the driver, then spoken to byte for byte. */
async function serverSession(url: string, options: string): Promise<net.Socket> {
  const client = new pg.Client({ connectionString: url, ...(options ? { options } : {}) })
  await client.connect()
  const socket = (client as unknown as { connection: { stream: net.Socket } }).connection.stream
  for (const event of ['data', 'end', 'close', 'error']) socket.removeAllListeners(event)
  socket.on('error', () => {})
  return socket
}

/** Opens `sessions` server sessions per client connection and rotates its transactions over them. */
export async function startTransactionPooler(
  url: string,
  sessions = 2,
  /** As PgBouncer's pool_mode=statement: a statement that leaves a transaction open ends the client. */
  o: { statementMode?: boolean } = {},
): Promise<TransactionPooler> {
  const open = new Set<net.Socket>()
  const track = (s: net.Socket) => {
    open.add(s)
    s.on('close', () => open.delete(s))
    s.on('error', () => {})
  }

  const server = net.createServer((client) => {
    track(client)
    let startup = Buffer.alloc(0)
    const onStartup = async (chunk: Buffer) => {
      startup = Buffer.concat([startup, chunk])
      if (startup.length < 8 || startup.length < startup.readInt32BE(0)) return
      const code = startup.readInt32BE(4)
      const first = startup.subarray(0, startup.readInt32BE(0))
      const rest = startup.subarray(startup.readInt32BE(0))
      startup = Buffer.alloc(0)
      if (code === SSL_REQUEST || code === GSS_REQUEST) {
        client.write('N')
        if (rest.length > 0) await onStartup(rest)
        return
      }
      client.off('data', onStartup)
      const parameters = startupParameters(first)
      const unsupported = [...parameters.keys()].find(
        (name) => !ACCEPTED_STARTUP_PARAMETERS.has(name.toLowerCase()),
      )
      if (unsupported !== undefined) {
        client.end(refusal(unsupported))
        return
      }
      client.pause()
      let servers: net.Socket[]
      try {
        servers = await Promise.all(
          Array.from({ length: sessions }, () => serverSession(url, trackedOptions(parameters))),
        )
      } catch {
        client.destroy()
        return
      }
      servers.forEach(track)
      client.on('close', () => {
        for (const s of servers) s.destroy()
      })
      relay(client, servers, rest, o.statementMode === true)
      const key = Buffer.alloc(8)
      key.writeInt32BE(process.pid, 0)
      client.write(
        Buffer.concat([
          message('R', Buffer.from([0, 0, 0, 0])),
          parameter('client_encoding', 'UTF8'),
          parameter('standard_conforming_strings', 'on'),
          parameter('integer_datetimes', 'on'),
          parameter('DateStyle', 'ISO, MDY'),
          message('K', key),
          message('Z', Buffer.from('I')),
        ]),
      )
      client.resume()
    }
    client.on('data', onStartup)
  })
  const pooled = await listenInPlaceOf(server, url)
  return {
    url: pooled.url,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy()
        server.close(() => resolve())
      }),
  }
}

/**
 * A transaction starts on the next server session and stays there until it answers ReadyForQuery
 * idle; what a session says while no transaction of this client runs on it is dropped.
 */
function relay(client: net.Socket, servers: net.Socket[], already: Buffer, statementMode: boolean) {
  let current: net.Socket | null = null
  let next = 0
  for (const s of servers) {
    s.on(
      'data',
      framer((type, frame) => {
        if (s !== current) return
        // PgBouncer sees the transaction at the ReadyForQuery that says one is open ('T', 'E').
        if (statementMode && type === 0x5a && frame[5] !== 0x49) {
          client.end(fatal('transaction blocks not allowed in statement pooling mode'))
          for (const server of servers) server.destroy()
          return
        }
        client.write(frame)
        if (type === 0x5a && frame[5] === 0x49) current = null // 'Z' with status 'I'
      }),
    )
  }
  const fromClient = framer((type, frame) => {
    if (type === 0x58) return void client.end() // 'X': Terminate
    if (current === null) {
      current = servers[next % servers.length]!
      next += 1
    }
    current.write(frame)
  })
  client.on('data', fromClient)
  if (already.length > 0) fromClient(already)
}
