// /readyz on a database it cannot reach says why, by code and in words, never with the URL's host: refused, a name that does not resolve, TLS, no answer.
import { afterAll, expect, setDefaultTimeout, test } from 'bun:test'
import { createServer, type Server, type Socket } from 'node:net'
import pg from 'pg'
import { createHealthMonitor } from '../../src/outbox/health-monitor.ts'
import { testCluster } from '../preload.ts'
import { closedPort } from '../support/closed-port.ts'
import { adminQuery } from '../support/postgres.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/**
 * The probe's bound where an answer comes (a refusal, a failed lookup, the server's own words): a
 * loaded machine may take more than the 1 s the silent server's test needs to answer, which then
 * read 'timeout: no answer within 1 s' (as the drainer's read-only test did at 2 s, 3337c4d).
 */
const ANSWERED_WITHIN_MS = 20_000

const pools: pg.Pool[] = []
const servers: Server[] = []
const sockets: Socket[] = []
afterAll(async () => {
  // A connect still waiting on the silent server ends with its socket, not after pg's timeout.
  for (const socket of sockets) socket.destroy()
  for (const s of servers) s.close()
  await Promise.all(pools.map((p) => p.end()))
})

/** What an API-only process's /readyz says of a database at `url` (its one probe). */
async function problemAt(url: string, probeTimeoutMs = ANSWERED_WITHIN_MS): Promise<string | null> {
  const pool = new pg.Pool({ connectionString: url, connectionTimeoutMillis: 10_000, max: 1 })
  pool.on('error', () => {})
  pools.push(pool)
  const monitor = createHealthMonitor({
    databases: [{ name: 'default', statements: pool, drainer: null, listener: null }],
    wedgedAfterMs: 60_000,
    probeTimeoutMs,
  })
  const [report] = await monitor.readiness()
  expect(report).toMatchObject({ reachable: false, migrated: false })
  return report!.problem
}

test('nothing listening at the port: refused, the server down or the port wrong', async () => {
  const port = await closedPort()
  const problem = await problemAt(`postgres://app:secret@127.0.0.1:${port}/app`)
  expect(problem).toStartWith('database unreachable (ECONNREFUSED: ')
  expect(problem).not.toContain('127.0.0.1')
})

test('a host name that does not resolve is named as such, without the name', async () => {
  const problem = await problemAt('postgres://app:secret@outbox-db.invalid:5432/app')
  expect(problem).toStartWith('database unreachable (ENOTFOUND: ')
  expect(problem).not.toContain('outbox-db.invalid')
})

test('a URL asking for TLS of a server without it: said to be TLS, not an outage', async () => {
  const cluster = await testCluster()
  const url = new URL(cluster.admin)
  url.searchParams.set('sslmode', 'verify-full')
  expect(await problemAt(url.toString())).toStartWith('database unreachable (tls_refused: ')
})

test('a server that takes the connection and never answers: no answer within the probe’s wait', async () => {
  const server = createServer((socket) => sockets.push(socket))
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  expect(await problemAt(`postgres://app:secret@127.0.0.1:${port}/app`, 1_000)).toBe(
    'database unreachable (timeout: no answer within 1 s)',
  )
})

test('a database closed to connections (ALLOW_CONNECTIONS false, 55000): said to refuse connections and what to do, not left as the server’s words alone', async () => {
  const cluster = await testCluster()
  const name = `outbox_closed_${process.pid}`
  try {
    await adminQuery(cluster.admin, `create database ${name}`)
    await adminQuery(cluster.admin, `alter database ${name} allow_connections false`)
    const pool = new pg.Pool({ connectionString: cluster.url(name), max: 1 })
    pool.on('error', () => {})
    pools.push(pool)
    const monitor = createHealthMonitor({
      databases: [{ name: 'default', statements: pool, drainer: null, listener: null }],
      wedgedAfterMs: 60_000,
      probeTimeoutMs: ANSWERED_WITHIN_MS,
    })
    const [report] = await monitor.readiness()
    // The server answered (reachable); whether the schema is there is not known (migrated false,
    // as for any database not read): the problem says why, as for a refused login.
    expect(report).toMatchObject({ reachable: true, migrated: false })
    expect(report!.problem).toStartWith(
      "the database refused this service's connection (SQLSTATE 55000: the database takes no connections (ALLOW_CONNECTIONS false); ",
    )
    expect(report!.problem).toEndWith(
      "): allow connections again (ALTER DATABASE … ALLOW_CONNECTIONS true), or check the database name in the database's URL",
    )
  } finally {
    // A session still on it (the pool, were the database to take connections) is ended with it,
    // as TestDb.drop and cloneTemplateDb drop theirs: the drop never fails for it in the test's place.
    await adminQuery(cluster.admin, `drop database if exists ${name} with (force)`)
  }
})
