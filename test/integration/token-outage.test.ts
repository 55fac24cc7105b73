// An Entra (token endpoint) outage through the drainer and the real Graph sender: rows wait uncounted, then go out once.
import { afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { Clock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { createGraphTransport } from '../../src/transport/graph-transport.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import {
  type FakeGraph,
  generateTestCertificate,
  startFakeGraph,
  type TestCertificate,
} from '../support/fake-graph.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const ROWS = 6
/** More rounds than the test engine's maxAttempts (3): a counted wait would fail every row. */
const ROUNDS = 5
/** Longer than the token source's longest backoff (a few minutes). */
const PAST_ANY_BACKOFF_MS = 10 * 60_000
const ENTRA_500 = { status: 500, error: 'server_error', aadsts: 50000 }

/** The token source's clock: its shared backoff passes without waiting for it. */
class ManualClock implements Clock {
  constructor(private t = Date.now()) {}
  now = () => this.t
  sleep = async () => {}
  advance(ms: number) {
    this.t += ms
  }
}

let cert: TestCertificate
beforeAll(async () => {
  cert = await generateTestCertificate()
})

let engine: TestEngine | null = null
let fake: FakeGraph | null = null
afterEach(async () => {
  await engine?.stop()
  await fake?.stop()
  engine = null
  fake = null
})

async function started(config: { throttleDeadlineSeconds?: number } = {}) {
  const clock = new ManualClock()
  const refreshes: string[] = []
  const f = await startFakeGraph({ certificates: [cert.certPem], now: clock.now })
  fake = f
  f.setFaults({ token: Array.from({ length: 1000 }, () => ENTRA_500) })
  const transport = createGraphTransport(
    {
      tenantId: f.tenantId,
      clientId: f.clientId,
      certificate: cert.certPem,
      certificateFile: null,
      privateKey: cert.keyPem,
      privateKeyFile: null,
      clientSecret: null,
      assertionAlgorithm: 'PS256',
      authorityUrl: f.authorityUrl,
      apiUrl: f.apiUrl,
      saveToSentItems: true,
      requestTimeoutMs: 5_000,
      mailboxLookup: false,
      ambiguousSendPolicy: 'resend',
    },
    'sender@example.com',
    {
      fetch,
      clock,
      log: silentLogger,
      onTokenRefresh: (outcome, code) => refreshes.push(`${outcome} ${code ?? ''}`.trim()),
    },
  )
  engine = createTestEngine(t, { config, deps: { sender: transport.sender } })
  await engine.start()
  const ids: string[] = []
  for (let i = 0; i < ROWS; i++) ids.push(await enqueue(t))
  return { clock, fake: f, engine, ids, refreshes }
}

/** Waits until every row has `n` attempts in its history and none is being sent. */
async function settledRounds(n: number) {
  await pollUntil(async () => {
    const r = await t.pool.query(
      `select count(*)::int as busy from mailer.email_outbox o
        where o.status = 'sending'
           or (o.status = 'pending'
               and (select count(*) from mailer.email_attempts a where a.outbox_id = o.id) < $1)`,
      [n],
    )
    return r.rows[0].busy === 0 ? true : undefined
  })
}

/** The next round: Entra's backoff has passed, and the rows' uncounted waits too (database time). */
async function nextRound(clock: ManualClock, e: TestEngine) {
  clock.advance(PAST_ANY_BACKOFF_MS)
  await t.pool.query(`update mailer.email_outbox set send_at = now() where status = 'pending'`)
  e.drainer.wake()
}

describe('an Entra outage', () => {
  test('longer than the retry schedule: rows wait uncounted on one shared backoff, then all are sent once', async () => {
    const { clock, fake: f, engine: e, ids, refreshes } = await started()
    for (let round = 1; round <= ROUNDS; round++) {
      await settledRounds(round)
      if (round < ROUNDS) await nextRound(clock, e)
    }
    const rows = await t.pool.query(
      'select status, attempts, last_error_code from mailer.email_outbox order by id',
    )
    expect(rows.rows).toEqual(
      ids.map(() => ({ status: 'pending', attempts: 0, last_error_code: 'AADSTS50000' })),
    )
    const history = await t.pool.query(
      'select distinct outcome, error_code, http_status from mailer.email_attempts',
    )
    expect(history.rows).toEqual([
      { outcome: 'throttled', error_code: 'AADSTS50000', http_status: 500 },
    ])
    // One growing delay for the whole process: at most one token request per round, not one per row.
    expect(f.tokenRequests.length).toBeGreaterThan(0)
    expect(f.tokenRequests.length).toBeLessThanOrEqual(ROUNDS)
    expect(f.accepted).toHaveLength(0)
    // The operator sees the outage by its code (outbox_token_failures_total), once per request.
    expect(refreshes).toEqual(f.tokenRequests.map(() => 'failure AADSTS50000'))

    f.setFaults({})
    await nextRound(clock, e)
    await pollUntil(async () => {
      const r = await t.pool.query(
        `select count(*)::int as n from mailer.email_outbox where status = 'sent'`,
      )
      return r.rows[0].n === ROWS ? true : undefined
    })
    expect(f.accepted.map((m) => m.outboxId).sort()).toEqual([...ids].sort())
    const sent = await t.pool.query('select distinct attempts from mailer.email_outbox')
    expect(sent.rows).toEqual([{ attempts: 1 }])
  })

  test('past THROTTLE_DEADLINE_SECONDS the rows fail `throttled`, as throttled rows do', async () => {
    const { clock, engine: e } = await started({ throttleDeadlineSeconds: 60 })
    await settledRounds(1)
    // Their first uncounted wait began an hour ago (database time).
    await t.pool.query(
      `update mailer.email_attempts set finished_at = finished_at - interval '1 hour'`,
    )
    await nextRound(clock, e)
    await pollUntil(async () => {
      const r = await t.pool.query(
        `select count(*)::int as n from mailer.email_outbox where status = 'failed'`,
      )
      return r.rows[0].n === ROWS ? true : undefined
    })
    const rows = await t.pool.query(
      'select distinct attempts, last_error_code from mailer.email_outbox',
    )
    expect(rows.rows).toEqual([{ attempts: 0, last_error_code: 'throttled' }])
  })
})
