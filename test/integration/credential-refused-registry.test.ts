// A worker's registry entry notes Entra refusing its credential (sql/0198): the code and since when at each beat, kept while it stands, cleared by a token; an older binary's entry and a gone worker's count for nothing.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { Clock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { extendLeases, type WorkerIdentity } from '../../src/outbox/heartbeat.ts'
import { liveStats } from '../../src/outbox/stats.ts'
import { createGraphTransport } from '../../src/transport/graph-transport.ts'
import { useTestDb } from '../support/db.ts'
import {
  answerSecretExpired,
  EXPIRED_SECRET,
  useEntraOfExpiredSecret,
} from '../support/expired-secret.ts'
import { graphConfigFor } from '../support/fake-graph.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
const entraOf = useEntraOfExpiredSecret()

test('the transport tells the refusal’s code and how long it has stood, across refusals, until a token comes', async () => {
  let now = Date.now()
  const clock: Clock = { now: () => now, sleep: async () => {} }
  const entra = entraOf()
  const transport = createGraphTransport(
    graphConfigFor(entra, { clientSecret: EXPIRED_SECRET }),
    'outbox@example.com',
    { fetch, clock, log: silentLogger },
  )
  answerSecretExpired(entra, 2)
  try {
    expect(transport.credentialRefusal()).toBeNull()
    await transport.tokens.getToken().catch(() => {})
    expect(transport.credentialRefusal()).toEqual({ code: 'AADSTS7000222', forMs: 0 })
    // Past the refusal's cooldown (60 s), refused again: it has stood since the first.
    now += 61_000
    await transport.tokens.getToken().catch(() => {})
    expect(entra.tokenRequests).toHaveLength(2)
    now += 9_000
    expect(transport.credentialRefusal()).toEqual({ code: 'AADSTS7000222', forMs: 70_000 })
    // The secret fixed (the fake takes it again): the next request's token clears it.
    now += 61_000
    await transport.tokens.getToken()
    expect(transport.credentialRefusal()).toBeNull()
  } finally {
    entra.setFaults({})
  }
})

/** A worker whose beats note `refusal` (read at each beat, as worker-registration.ts's getter). */
function workerWith(refusal: () => { code: string; forMs: number } | null): WorkerIdentity {
  return {
    id: 'host:1:abcdef',
    host: 'host',
    pid: 1,
    version: 'test',
    probeMailbox: '',
    leaseSeconds: 60,
    get credentialRefusal() {
      return refusal()
    },
  }
}

const entry = async () =>
  (
    await t.pool.query(`select credential_refused_code as code,
            extract(epoch from now() - credential_refused_since)::int as age
       from mailer.workers`)
  ).rows

test('a beat notes the code and since when (database time); a later beat keeps that since; a token clears both; a code of other characters is kept as none of them', async () => {
  let refusal: { code: string; forMs: number } | null = { code: 'AADSTS7000222', forMs: 30_000 }
  const worker = workerWith(() => refusal)
  await extendLeases(t.db, worker, [], 60)
  expect(await entry()).toEqual([{ code: 'AADSTS7000222', age: 30 }])
  expect((await liveStats(t.db, null)).credentialRefused).toEqual({
    workers: 1,
    codes: ['AADSTS7000222'],
    since: expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/),
  })
  expect((await liveStats(t.db, 'acme')).credentialRefused).toBeNull()
  // The beat a second later (as the process sees it) keeps the since its first noted.
  await t.pool.query(
    `update mailer.workers set credential_refused_since = credential_refused_since - interval '100 s'`,
  )
  refusal = { code: 'AADSTS7000222', forMs: 31_000 }
  await extendLeases(t.db, worker, [], 60)
  expect(await entry()).toEqual([{ code: 'AADSTS7000222', age: 130 }])
  refusal = null
  await extendLeases(t.db, worker, [], 60)
  expect(await entry()).toEqual([{ code: null, age: null }])
  expect((await liveStats(t.db, null)).credentialRefused).toEqual({
    workers: 0,
    codes: [],
    since: null,
  })
  refusal = { code: "token refused: 'contoso'", forMs: 0 }
  await extendLeases(t.db, worker, [], 60)
  expect(await entry()).toEqual([{ code: 'refused', age: 0 }])
})

test('an older binary’s entry (its beat writes neither column) and a gone worker’s refused entry count for nothing', async () => {
  // An older binary's upsert, as 0084's release writes it: running beside this one in a rolling deploy.
  const older = `insert into mailer.workers (id, host, pid, version, lease_seconds)
                 values ('older:2:abcdef', 'older', 2, 'old', 60)
                 on conflict (id) do update set last_heartbeat_at = now()`
  await t.pool.query(older)
  await t.pool.query(older)
  // A worker that stopped an hour ago refused: its entry stays a day, no longer live.
  await extendLeases(
    t.db,
    workerWith(() => ({ code: 'AADSTS700027', forMs: 0 })),
    [],
    60,
  )
  await t.pool.query(
    `update mailer.workers set last_heartbeat_at = now() - interval '1 hour' where id = 'host:1:abcdef'`,
  )
  expect((await liveStats(t.db, null)).credentialRefused).toEqual({
    workers: 0,
    codes: [],
    since: null,
  })
})
