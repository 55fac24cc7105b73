// Scenario 11: kill -9 mid-drain, every row's expiresAt passed by the restart: with lookups, each send Graph took settles sent, every other row expired; none sent twice or late.
import { afterAll, expect, setDefaultTimeout } from 'bun:test'
import { cleanupAll, report, spawnMailer, statusCounts, within } from './harness.ts'
import { test } from './kept-evidence.ts'
import { killedMidDrain } from './killed-mid-drain.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). CI's --timeout
// (.ci/run): the bound of the hooks (cleanupAll); each scenario passes its own.
setDefaultTimeout(180_000)
afterAll(cleanupAll)

const ROWS = 300

test('SIGKILL mid-drain, expiresAt passed before the restart: sends Graph took are looked up and settle sent, the rest expire, none sent again', async () => {
  const { db, graph, ids, env } = await killedMidDrain({
    database: 'kill_expiry',
    mailer: 'expiry-kill-1',
    rows: ROWS,
    lookup: true,
    acceptedBeforeKill: 60,
  })
  // Every row not settled expires now (an OTP's minutes running out while no worker ran).
  await db.q(
    `update mailer.email_outbox set expires_at = now() + interval '10 milliseconds'
      where status in ('pending', 'sending')`,
  )
  await within('expiresAt passed', 5_000, async () => {
    const [r] = await db.q<{ passed: boolean }>(
      `select coalesce(bool_and(expires_at < now()), true) as passed from mailer.email_outbox
        where status in ('pending', 'sending')`,
    )
    return r!.passed ? true : undefined
  })
  // The dead worker's requests Graph was still answering are over: what it took is final.
  await within('no request of the killed worker in flight', 10_000, () =>
    graph.fake.inFlight() === 0 ? true : undefined,
  )
  const acceptedAtKill = graph.fake.accepted.length
  const [frozen] = await db.q<{ in_flight: number }>(
    `select count(*) filter (where status = 'sending' and send_started_at is not null)::int as in_flight
       from mailer.email_outbox`,
  )

  const second = await spawnMailer('expiry-kill-2', env)
  await within(
    'every row final',
    60_000,
    async () => {
      const [r] = await db.q<{ open: number }>(
        `select count(*) filter (where status in ('pending', 'sending'))::int as open from mailer.email_outbox`,
      )
      return r!.open === 0 ? true : undefined
    },
    { mailers: [second], every: 100 },
  )

  // Nothing sent late: the restart sent nothing, and each message Graph has is one sent row.
  expect(graph.fake.accepted.length).toBe(acceptedAtKill)
  expect(graph.duplicates(ids)).toBe(0)
  const rows = await db.q<{
    id: string
    status: string
    last_error_code: string | null
    last_error: string | null
    marked: boolean
    leased: boolean
  }>(
    `select id::text, status, last_error_code, last_error, send_started_at is not null as marked,
            (lease_owner is not null or lease_token is not null or lease_expires_at is not null) as leased
       from mailer.email_outbox`,
  )
  const accepted = new Set(graph.fake.accepted.map((a) => a.outboxId))
  const wrong = rows.filter(
    (r) =>
      r.leased ||
      (accepted.has(r.id)
        ? r.status !== 'sent'
        : r.status !== 'failed' ||
          r.last_error_code !== 'expired' ||
          r.last_error !==
            (r.marked
              ? 'expiresAt passed; an interrupted send may have delivered it'
              : 'not sent before expiresAt')),
  )
  const counts = await statusCounts(db)
  report('11 expiry after sigkill', {
    rows: ROWS,
    acceptedAtKill,
    inFlightAtKill: frozen!.in_flight,
    sent: counts.sent ?? 0,
    expired: counts.failed ?? 0,
  })
  expect(wrong).toEqual([])
  // The kill must have left sends Graph took unrecorded, or this scenario proved nothing.
  const [unrecorded] = await db.q<{ n: number }>(
    `select count(*)::int as n from mailer.email_attempts where outcome = 'lease_expired'
        and outbox_id = any($1::bigint[])`,
    [[...accepted]],
  )
  expect(unrecorded!.n).toBeGreaterThan(0)
  second.proc.kill('SIGTERM')
  expect(await second.exited).toBe(0)
}, 120_000)
