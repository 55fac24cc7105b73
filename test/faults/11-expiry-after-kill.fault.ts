// Scenario 11: kill -9 mid-drain, every row's expiresAt passed by the restart: with lookups, each send Graph took settles sent, every other row expired; none sent twice or late.
import { afterAll, expect, setDefaultTimeout } from 'bun:test'
import { LOOKUP_TOO_EARLY_CODE } from '../../src/outbox/lookup-grace.ts'
import { cleanupAll, type Database, report, spawnMailer, statusCounts, within } from './harness.ts'
import { test } from './kept-evidence.ts'
import { killedMidDrain, killedSessionsEnded, NOT_TAKEN } from './killed-mid-drain.ts'

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
    halfTakenAtKill: true,
  })
  await killedSessionsEnded(db)
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
  const interrupted = await restartedAMinuteLater(db)

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
  const notTaken = graph.fake.requests
    .filter((r) => r.kind === 'sendMail' && r.fault === NOT_TAKEN.code)
    .map((r) => r.outboxId!)
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
    interruptedAtKill: interrupted.length,
    notTakenAtKill: notTaken.length,
    sent: counts.sent ?? 0,
    expired: counts.failed ?? 0,
  })
  expect(wrong).toEqual([])
  // Each send in flight that Graph did not take: its row expired as not sent, its mark cleared
  // (looked up, found nothing, the grace out), as the check above reads it; the kill must have
  // left such a send, or that ending went unproved.
  expect(notTaken.length).toBeGreaterThan(0)
  expect(rows.filter((r) => notTaken.includes(r.id) && r.marked)).toEqual([])
  // The same way every run: each interrupted send looked up (Sent Items, then, not there, the
  // whole mailbox), its grace out at the first lookup: none waited to look again.
  const lookedUp = new Set(
    graph.fake.requests.filter((r) => r.kind === 'lookup').map((r) => r.outboxId),
  )
  expect([...lookedUp].toSorted()).toEqual(interrupted.toSorted())
  const [waited] = await db.q<{ n: number }>(
    'select count(*)::int as n from mailer.email_attempts where error_code = $1',
    [LOOKUP_TOO_EARLY_CODE],
  )
  expect(waited!.n).toBe(0)
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

/**
 * The restart comes a minute after the kill, stepped in database time: the killed worker's leases,
 * its busy send slots and its interrupted sends' starts and deadlines, a minute earlier. Its leases
 * and its slots (a TTL of the request timeout plus 15 s) have then ended, and each interrupted
 * send's lookup grace (LOOKUP_GRACE_SECONDS from its deadline, its start plus 2 s) is out. A
 * restart within the second, as before, waited by chance: till about 32 s after the kill, for the
 * grace of a send whose start was recorded and which Graph never took (its lookup's "not found"
 * means "look again" until then), when the kill found one; 5 s more (HOLDER_GONE_MS) for a slot
 * when the killed worker held all 32, seen gone at the restart's first take. What the scenario
 * waits on, not what it asserts. Returns the rows whose send was interrupted (a pending row keeping
 * an earlier send's mark among them).
 */
async function restartedAMinuteLater(db: Database): Promise<string[]> {
  await db.q(
    `update mailer.send_slots set expires_at = expires_at - interval '1 minute' where expires_at > now()`,
  )
  const rows = await db.q<{ id: string; marked: boolean }>(
    `update mailer.email_outbox
        set lease_expires_at = lease_expires_at - interval '1 minute',
            send_started_at = send_started_at - interval '1 minute',
            send_deadline_at = send_deadline_at - interval '1 minute'
      where status in ('pending', 'sending')
      returning id::text, send_started_at is not null as marked`,
  )
  return rows.filter((r) => r.marked).map((r) => r.id)
}
