// An Entra (token endpoint) outage or refusal through the drainer and the real Graph sender: rows wait uncounted, then go out once, all at once when a token comes.
import { afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { WorkerConfig } from '../../src/config.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import { GIVE_BACKS_WAIT_FOR_CLAIM } from '../../src/outbox/claim-before-give-back.ts'
import { everyTokenWaitRowDue, tokenWaitRowsDue } from '../../src/outbox/token-wait-rows.ts'
import { createGraphTransport } from '../../src/transport/graph-transport.ts'
import { boundedLatches } from '../support/bounded-latches.ts'
import { useTestDb } from '../support/db.ts'
import { allIn, enqueue } from '../support/engine.ts'
import { pollUntil, pollUntilCount, settledFor } from '../support/events.ts'
import {
  generateTestCertificate,
  graphConfigFor,
  startFakeGraph,
  type TestCertificate,
  type TokenFault,
} from '../support/fake-graph.ts'
import { throughQueries } from '../support/through-queries.ts'
import {
  ENTRA_500,
  ManualClock,
  type OutageRun,
  outageCycle,
  PAST_ANY_BACKOFF_MS,
  startOutage,
} from '../support/token-outage.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })

let cert: TestCertificate
beforeAll(async () => {
  cert = await generateTestCertificate()
})

let run: OutageRun | null = null
afterEach(async () => {
  await run?.stop()
  run = null
})

/**
 * 30 rows due oldest first (in id order), Entra answering `tokenFault`, the worker woken to claim
 * them: its first claim meets the first 10 (WORKER_CONCURRENCY).
 */
async function thirtyDue(
  tokenFault: TokenFault | null,
  config: Partial<WorkerConfig> = {},
  ratePerMinute = 0,
) {
  const r = await startOutage(t, {
    rows: 30,
    cert,
    tokenFault,
    config,
    ratePerMinute,
    // Not due while they are enqueued one by one (a claim would take the first few alone).
    options: () => ({ sendAt: new Date(Date.now() + 3600_000).toISOString() }),
  })
  run = r
  await t.pool.query(
    `update mailer.email_outbox set send_at = now() - interval '1 hour' + id * interval '1 millisecond'`,
  )
  r.engine.drainer.wake()
  return r
}

describe('an Entra outage', () => {
  const ROWS = 30
  /** More backoff cycles than the test engine's maxAttempts (3): a counted wait would fail every row. */
  const CYCLES = 10

  test('backoff cycle after backoff cycle: rows wait uncounted on one shared backoff, each recorded once; then every row goes out once', async () => {
    const r = await startOutage(t, { rows: ROWS, cert })
    run = r
    for (let k = 1; k <= CYCLES; k++) await outageCycle(t, r, k)
    const perRow = await t.pool.query<{ n: number }>(
      `select (select count(*) from mailer.email_attempts a where a.outbox_id = o.id)::int as n
         from mailer.email_outbox o order by o.id`,
    )
    const history = perRow.rows.reduce((s, x) => s + x.n, 0)
    console.log(
      `[outage] ${ROWS} rows, ${CYCLES} backoff cycles of Entra 500s: ${r.fake.tokenRequests.length} token requests, ` +
        `${history} history rows (at most ${Math.max(...perRow.rows.map((x) => x.n))} per row), ` +
        `${r.claims.rows} rows claimed (${(r.claims.rows / ROWS).toFixed(1)} per row) by ${r.claims.statements} claims, ` +
        `${r.permits()} provider slots taken`,
    )
    // One token request per backoff, whatever the number of rows.
    expect(r.fake.tokenRequests.length).toBe(CYCLES)
    // The operator sees the outage by its code (outbox_token_failures_total), once per request.
    expect(r.refreshes).toEqual(r.fake.tokenRequests.map(() => 'failure AADSTS50000'))
    // Only the rows that meet a token request take a provider slot and the last check (each
    // cycle's first claim, WORKER_CONCURRENCY 10); the others go back at once.
    expect(r.permits()).toBeLessThanOrEqual(CYCLES * 10)
    // A run of waits is recorded by its first one: at most one entry per row for the whole outage.
    expect(perRow.rows.every((x) => x.n <= 1)).toBe(true)
    const rows = await t.pool.query(
      'select distinct status, attempts, last_error_code from mailer.email_outbox',
    )
    expect(rows.rows).toEqual([{ status: 'pending', attempts: 0, last_error_code: 'AADSTS50000' }])
    const entries = await t.pool.query(
      'select distinct outcome, error_code, http_status from mailer.email_attempts',
    )
    expect(entries.rows).toEqual([
      { outcome: 'throttled', error_code: 'AADSTS50000', http_status: 500 },
    ])
    expect(r.fake.accepted).toHaveLength(0)

    // Entra is back: once its backoff has passed, every row goes out, once, as its first attempt.
    r.fake.setFaults({})
    r.clock.advance(PAST_ANY_BACKOFF_MS)
    await t.pool.query(`update mailer.email_outbox set send_at = now() where status = 'pending'`)
    r.engine.drainer.wake()
    await allSent(ROWS)
    expect(r.fake.accepted.map((m) => m.outboxId).sort()).toEqual([...r.ids].sort())
    const sent = await t.pool.query('select distinct attempts from mailer.email_outbox')
    expect(sent.rows).toEqual([{ attempts: 1 }])
  })

  test('the outage is the transport’s line, not one per row and backoff: each wait given back is logged at debug', async () => {
    const lines: { level: string; msg: string; outcome?: string }[] = []
    const r = await startOutage(t, {
      rows: ROWS,
      cert,
      log: createLogger('debug', (l) => lines.push(JSON.parse(l))),
    })
    run = r
    for (let k = 1; k <= 3; k++) await outageCycle(t, r, k)
    const waits = lines.filter((l) => l.outcome === 'throttled')
    // Every row met a wait (the lines are there, for a debug log), and none of them above debug:
    // with 10,000 rows and the backoff at its 5 minutes, that was 33 lines a second at info for
    // as long as Entra was down, each saying what 'graph token request failed' had said.
    expect(new Set(waits.map((l) => (l as { outboxId?: string }).outboxId)).size).toBe(ROWS)
    expect(waits.filter((l) => l.level !== 'debug')).toEqual([])
  })

  test('rows whose earlier send was interrupted: a mailbox lookup that gets no token waits as a send does (the shared backoff, uncounted, recorded once); then each is looked up and goes out once', async () => {
    const r = await startOutage(t, { rows: ROWS, cert, interrupted: true })
    run = r
    for (let k = 1; k <= CYCLES; k++) await outageCycle(t, r, k)
    expect(r.fake.tokenRequests.length).toBe(CYCLES)
    const perRow = await t.pool.query<{ n: number }>(
      `select (select count(*) from mailer.email_attempts a where a.outbox_id = o.id)::int as n
         from mailer.email_outbox o order by o.id`,
    )
    expect(perRow.rows.map((x) => x.n)).toEqual(r.ids.map(() => 1))
    // Uncounted, still marked (looked up before any send), and due when Entra is asked again.
    const rows = await t.pool.query(
      `select distinct status, attempts, last_error_code, send_started_at is not null as marked
         from mailer.email_outbox`,
    )
    expect(rows.rows).toEqual([
      { status: 'pending', attempts: 0, last_error_code: 'AADSTS50000', marked: true },
    ])
    const entries = await t.pool.query(
      'select distinct outcome, error_code, http_status from mailer.email_attempts',
    )
    expect(entries.rows).toEqual([
      { outcome: 'throttled', error_code: 'AADSTS50000', http_status: 500 },
    ])
    // The last cycle's wait is the token source's backoff (5 minutes by now), for the rows whose
    // lookup met Entra as for the others: not the retry backoff (RETRY_BASE_SECONDS 10 here).
    const waits = await t.pool.query(
      `select count(*)::int as n from mailer.email_outbox where send_at < now() + interval '4 minutes'`,
    )
    expect(waits.rows[0].n).toBe(0)

    // Entra back (a /readyz probe's token): the first token after the failures brings the rows
    // due (token-wait-rows.ts), 5 minutes early, and each is looked up before it is sent again.
    r.fake.setFaults({})
    r.clock.advance(PAST_ANY_BACKOFF_MS)
    await r.transport.tokens.getToken()
    await allSent(ROWS)
    expect(r.fake.accepted.map((m) => m.outboxId).sort()).toEqual([...r.ids].sort())
    const lookedUpFirst = r.ids.filter((id) => {
      const first = r.fake.requests.find((q) => q.outboxId === id)
      return first?.kind === 'lookup'
    })
    expect(lookedUpFirst).toEqual(r.ids)
  })

  test('past THROTTLE_DEADLINE_SECONDS the rows fail `throttled`, as throttled rows do', async () => {
    const r = await startOutage(t, { rows: 6, cert, config: { throttleDeadlineSeconds: 60 } })
    run = r
    await outageCycle(t, r, 1)
    // Their first uncounted wait began an hour ago (database time).
    await t.pool.query(
      `update mailer.email_attempts set finished_at = finished_at - interval '1 hour'`,
    )
    await outageCycle(t, r, 2)
    await allIn(t, 'failed', 6)
    const rows = await t.pool.query(
      'select distinct attempts, last_error_code from mailer.email_outbox',
    )
    expect(rows.rows).toEqual([{ attempts: 0, last_error_code: 'throttled' }])
  })
})

describe('AMBIGUOUS_SEND_POLICY=hold, lookups off: rows whose earlier send was interrupted', () => {
  // Held for an operator: the policy needs nothing of Graph, so an outage neither delays it nor
  // names the rows by the token's code (until THROTTLE_DEADLINE_SECONDS, then `throttled`).
  test.each([
    ['Entra hangs', 'hang'],
    ['Entra answers 500', ENTRA_500],
  ] as const)(
    '%s: each fails `ambiguous_send` at once, no token asked for, no provider slot taken',
    async (_, tokenFault) => {
      const r = await startOutage(t, {
        rows: 3,
        cert,
        tokenFault,
        interrupted: true,
        lookup: false,
        ambiguousPolicy: 'hold',
      })
      run = r
      // Settled, or waiting on a token it asked for.
      await pollUntil(async () => {
        if (r.fake.tokenRequests.length > 0) return true
        const q = await t.pool.query(
          `select count(*)::int as n from mailer.email_outbox where status = 'failed'`,
        )
        return q.rows[0].n === 3 ? true : undefined
      })
      const rows = await t.pool.query(
        `select distinct status, attempts, last_error_code, send_started_at is not null as marked
         from mailer.email_outbox`,
      )
      // Its mark cleared: retried through the API, it is sent (README, AMBIGUOUS_SEND_POLICY).
      expect(rows.rows).toEqual([
        { status: 'failed', attempts: 1, last_error_code: 'ambiguous_send', marked: false },
      ])
      expect(r.fake.tokenRequests).toHaveLength(0)
      expect(r.permits()).toBe(0)
      const entries = await t.pool.query(
        'select outcome, error_code, count(*)::int as n from mailer.email_attempts group by 1, 2',
      )
      expect(entries.rows).toEqual([{ outcome: 'failed', error_code: 'ambiguous_send', n: 3 }])
    },
  )
})

describe('a stop while a row waits for its Graph token (Entra hangs)', () => {
  // Nothing reached Graph: the row goes back as any unstarted one on a stop, uncounted and due at
  // once for another worker (which may have a token), its interrupted send's mark kept. So whether
  // the worker looks that send up or sends it again unverified (resend): the token comes before
  // either. (Under hold, lookups off, the row waits for no token: above.)
  const CASES = [
    ['its send', {}],
    ['the mailbox lookup of its interrupted send', { interrupted: true }],
    ['its interrupted send, lookups off (resend)', { interrupted: true, lookup: false }],
  ] as const
  const waitingForToken = (r: OutageRun) =>
    pollUntil(async () =>
      r.fake.tokenRequests.length === 1 && r.engine.drainer.status().inFlight === 1
        ? true
        : undefined,
    )
  async function givenBackOnce(interrupted: boolean) {
    const row = await t.pool.query(
      `select status, attempts, send_at <= now() as due, send_started_at is not null as marked
         from mailer.email_outbox`,
    )
    expect(row.rows).toEqual([{ status: 'pending', attempts: 0, due: true, marked: interrupted }])
    const history = await t.pool.query('select outcome from mailer.email_attempts')
    expect(history.rows).toEqual([{ outcome: 'released' }])
  }

  test.each(CASES)('%s: the row is released, not retried', async (_, o) => {
    const r = await startOutage(t, { rows: 1, cert, tokenFault: 'hang', ...o })
    run = r
    await waitingForToken(r)
    // Past the grace the wait is aborted (the request deadline, 5 s, is far off).
    await r.engine.stop(50)
    await r.fake.stop()
    run = null
    await givenBackOnce('interrupted' in o)
  })

  // ciH: a claim the loop began just before the stop (the listener's sweep, heard during the
  // claim that took the row) ran its statement after the stop's give-back was written: it took
  // the row again, and the stop gave it back a second time (history: released, released).
  test.each(CASES)(
    '%s, a claim under way as the stop begins: the row is given back once, not claimed again',
    async (_, o) => {
      const lines: Record<string, unknown>[] = []
      const log = createLogger('debug', (l) => lines.push(JSON.parse(l)))
      const r = await startOutage(t, { rows: 1, cert, tokenFault: 'hang', log, ...o })
      run = r
      await waitingForToken(r)
      const hold = r.holdNextClaim()
      r.engine.drainer.wake()
      await hold.entered
      const stopped = r.engine.stop(50)
      try {
        // The claim's statement runs once the stop's give-back is written, or waits for the claim.
        await pollUntil(async () => {
          if (lines.some((l) => l.msg === GIVE_BACKS_WAIT_FOR_CLAIM)) return true
          const row = await t.pool.query('select status from mailer.email_outbox')
          return row.rows[0].status === 'pending' ? true : undefined
        })
      } finally {
        hold.release()
      }
      await stopped
      await r.fake.stop()
      run = null
      await givenBackOnce('interrupted' in o)
      expect(r.claims.rows).toBe(1)
    },
  )
})

describe('a refused credential (an unregistered certificate)', () => {
  const REFUSED = { status: 401, error: 'invalid_client', aadsts: 700027 }
  /** Past the refusal's cooldown (a minute, on the token source's clock). */
  const PAST_COOLDOWN_MS = 61_000

  /**
   * Refusal cycle `k` (1-based): past the first, every waiting row is due (their order kept: each
   * is moved back by the same 10 minutes) and the cooldown passes; then waits until the worker has
   * asked Entra `k` times and is held off again with nothing claimed.
   */
  async function refusalCycle(r: OutageRun, k: number) {
    if (k > 1) {
      // Moved while the cooldown holds claims off: past it the loop may claim before the wake (one
      // still naming the waiting rows, woken as the last refusal's rows went back), and a claim
      // during the update skips the rows it has locked, meeting later ones in their place.
      await t.pool.query(
        `update mailer.email_outbox set send_at = send_at - interval '10 minutes' where status = 'pending'`,
      )
      r.clock.advance(PAST_COOLDOWN_MS)
      r.engine.drainer.wake()
    }
    await pollUntil(async () => {
      if (r.fake.tokenRequests.length < k || r.engine.drainer.status().inFlight > 0)
        return undefined
      const s = await t.pool.query(
        `select count(*)::int as n from mailer.email_outbox where status = 'sending'`,
      )
      return s.rows[0].n === 0 && r.transport.blockedForMs() > 0 ? true : undefined
    }, 30_000)
  }
  const metSoFar = async () =>
    (
      await t.pool.query<{ id: string }>(
        'select distinct outbox_id::text as id from mailer.email_attempts order by 1',
      )
    ).rows.map((x) => x.id)
  const statusOf = async (ids: string[]) =>
    (
      await t.pool.query(
        'select distinct status, last_error_code from mailer.email_outbox where id = any($1::bigint[])',
        [ids],
      )
    ).rows

  test('a row whose expiresAt passes while the workers are held off is failed `expired` within a lease length, met before or not', async () => {
    const r = await startOutage(t, {
      rows: 3,
      cert,
      tokenFault: REFUSED,
      config: { leaseSeconds: 2, heartbeatSeconds: 1 },
      // Not due while they are enqueued one by one: a claim would take the first few alone, and the
      // refusal then holds claims off (under load, 2 of 3 met).
      options: () => ({
        sendAt: new Date(Date.now() + 1800_000).toISOString(),
        expiresAt: new Date(Date.now() + 3600_000).toISOString(),
      }),
    })
    run = r
    await t.pool.query(`update mailer.email_outbox set send_at = now() - interval '1 second'`)
    r.engine.drainer.wake()
    await refusalCycle(r, 1)
    const [met] = r.ids
    expect(await metSoFar()).toEqual([...r.ids].sort())
    // Enqueued while the credential stands refused: no claim meets it.
    const unmet = (
      await t.pool.query<{ id: string }>(
        `select mailer.enqueue_email('{"to":"a@example.com","subject":"s","text":"t"}'::jsonb,
                jsonb_build_object('expiresAt', now() + interval '1 hour')) as id`,
      )
    ).rows[0]!.id
    await t.pool.query(
      `update mailer.email_outbox set expires_at = now() - interval '1 second',
              send_at = least(send_at, now() - interval '2 seconds') where id = any($1::bigint[])`,
      [[met, unmet]],
    )
    // The reclaim's sweep fails them within a lease length; the bound is generous for a starved
    // machine, and the cooldown runs on r.clock, so no claim can meet them meanwhile (the token
    // request count below shows it).
    for (const id of [met!, unmet]) await r.engine.events.waitFor(settledFor(id, 'expired'), 20_000)
    expect(await statusOf([met!, unmet])).toEqual([
      { status: 'failed', last_error_code: 'expired' },
    ])
    // Entra was not asked again: the expiry needed no claim.
    expect(r.fake.tokenRequests).toHaveLength(1)
    expect(await statusOf(r.ids.slice(1))).toEqual([
      { status: 'pending', last_error_code: 'AADSTS700027' },
    ])
  })

  // A wake heard while the worker's statement naming the held rows ran (rows enqueued meanwhile,
  // which it did not see) was lost to the loop's wait: those rows went unnamed until the cooldown's
  // end (refused() below: "35 named" not met within 30 s, twice in 40 runs of this file under load).
  test('rows enqueued while the rows the refusal holds are being named are named too: the wake they bring is not lost', async () => {
    // Bounded and named: the steps while the answer is held are two enqueues and a 10 s poll.
    const latches = boundedLatches(20_000)
    const answered = latches.make('the naming statement answered (held)')
    const released = latches.make('the naming statement’s answer let go by the test')
    let holding = false
    // Once armed, the next naming statement runs, and its answer is held: rows enqueued meanwhile
    // are not in it, and their notifications (and a wake) come while the worker waits for it.
    const db = throughQueries(t, async (run, text) => {
      const answer = await run()
      if (holding && /update mailer\.email_outbox o\s+set last_error_code/.test(text)) {
        holding = false
        answered.resolve()
        await released.wait()
      }
      return answer
    })
    // No backstop poll comes meanwhile (the first, armed while the listener connected, is 1 s).
    const deps = { db, pollIntervalMs: () => 600_000 }
    const r = await startOutage(t, { rows: 3, cert, tokenFault: REFUSED, deps })
    run = r
    await refusalCycle(r, 1)
    const named = [{ status: 'pending', last_error_code: 'AADSTS700027' }]
    await pollUntil(async () => ((await statusOf(r.ids)).length === 1 ? true : undefined))
    expect(await statusOf(r.ids)).toEqual(named)
    const heard = () => r.engine.events.events.filter((e) => e.type === 'notification').length
    const before = heard()
    holding = true
    const first = await enqueue(t)
    await answered.wait()
    const late = [await enqueue(t), await enqueue(t)]
    // Their notifications heard (a wake each) while the worker still waits for the naming's answer.
    await pollUntil(async () => (heard() >= before + 3 ? true : undefined))
    r.engine.drainer.wake()
    released.resolve()
    const all = [...r.ids, first, ...late]
    await pollUntil(async () => {
      const rows = await statusOf(all)
      return rows.length === 1 && rows[0].last_error_code !== null ? true : undefined
    }).catch(() => undefined)
    expect(await statusOf(all)).toEqual(named)
    expect(r.fake.tokenRequests).toHaveLength(1)
  })

  test('every due row the refusal holds names it, met by a claim or not, enqueued before it or during it, each written once: not again at the next refusal', async () => {
    const r = await thirtyDue(REFUSED)
    await refusalCycle(r, 1)
    const [first, rest] = [r.ids.slice(0, 10), r.ids.slice(10)]
    expect(await metSoFar()).toEqual([...first].sort())
    // The 20 rows no claim met wait for the same credential: an operator listing them sees why.
    const named = await pollUntil(async () => {
      const rows = await statusOf(r.ids)
      return rows.length === 1 && rows[0].last_error_code !== null ? rows : undefined
    }, 10_000).catch(() => statusOf(r.ids))
    expect(named).toEqual([{ status: 'pending', last_error_code: 'AADSTS700027' }])
    const versions = async (ids: string[]) =>
      (
        await t.pool.query<{ v: string }>(
          'select xmin::text || ctid::text as v from mailer.email_outbox where id = any($1::bigint[]) order by id',
          [ids],
        )
      ).rows.map((x) => x.v)
    const [second, third] = [rest.slice(0, 10), rest.slice(10)]
    const thirdBefore = await versions(third)
    // A row enqueued due during the refusal is named at the next one.
    const late = (
      await t.pool.query<{ id: string }>(
        `select mailer.enqueue_email('{"to":"a@example.com","subject":"s","text":"t"}'::jsonb)::text as id`,
      )
    ).rows[0]!.id
    // The next refusal: past the cooldown the next ten in claim order are met (the first ten went
    // back due after it, in database time), and Entra refuses again.
    r.clock.advance(PAST_COOLDOWN_MS)
    r.engine.drainer.wake()
    await pollUntil(async () => ((await metSoFar()).length === 20 ? true : undefined), 30_000)
    expect(await metSoFar()).toEqual([...first, ...second].sort())
    await pollUntil(async () => {
      const rows = await statusOf([late])
      return rows[0]?.last_error_code === 'AADSTS700027' ? true : undefined
    }, 30_000)
    // Rows already named were not written again (their row version is the same).
    expect(await versions(third)).toEqual(thirdBefore)
    expect(await statusOf(r.ids)).toEqual([{ status: 'pending', last_error_code: 'AADSTS700027' }])
    // A row enqueued while the refusal stands is named at its wake (its notification), not a
    // refusal later; the rows named before are left alone.
    const latest = (
      await t.pool.query<{ id: string }>(
        `select mailer.enqueue_email('{"to":"a@example.com","subject":"s","text":"t"}'::jsonb)::text as id`,
      )
    ).rows[0]!.id
    r.engine.drainer.wake()
    await pollUntil(async () => {
      const rows = await statusOf([latest])
      return rows[0]?.last_error_code === 'AADSTS700027' ? true : undefined
    }, 10_000)
    expect(await versions(third)).toEqual(thirdBefore)
    expect(r.fake.tokenRequests).toHaveLength(2)
  })

  test('rows are met WORKER_CONCURRENCY a minute, those due longest first; one past THROTTLE_DEADLINE_SECONDS fails `throttled` when met again, not before', async () => {
    const r = await thirtyDue(REFUSED, { throttleDeadlineSeconds: 60 })
    const [first, second, third] = [r.ids.slice(0, 10), r.ids.slice(10, 20), r.ids.slice(20)]
    await refusalCycle(r, 1)
    expect(await metSoFar()).toEqual([...first].sort())
    // The first ten's waits began an hour ago (database time): past their deadline from now on.
    await t.pool.query(
      `update mailer.email_attempts set finished_at = finished_at - interval '1 hour'`,
    )
    await refusalCycle(r, 2)
    expect(await metSoFar()).toEqual([...first, ...second].sort())
    await refusalCycle(r, 3)
    expect(await metSoFar()).toEqual([...r.ids].sort())
    // Past their deadline for two cycles, not met since: still waiting.
    expect(await statusOf(first)).toEqual([{ status: 'pending', last_error_code: 'AADSTS700027' }])
    await refusalCycle(r, 4)
    expect(await statusOf(first)).toEqual([{ status: 'failed', last_error_code: 'throttled' }])
    expect(await statusOf([...second, ...third])).toEqual([
      { status: 'pending', last_error_code: 'AADSTS700027' },
    ])
    expect(r.fake.tokenRequests).toHaveLength(4)
  })
})

/** A client secret Entra refuses (AADSTS7000215): the certificate's refusal is the same to the rows. */
const SECRET_REFUSED = { status: 401, error: 'invalid_client', aadsts: 7000215 }
/** Past the refusal's cooldown (a minute, on the token source's clock). */
const COOLDOWN_PASSED_MS = 61_000
/**
 * Far below the minute a row a refusal met is given back for: the rows go at once, or not. A bound
 * on the drain's progress (no row sent for this long), not its total: a loaded machine took longer
 * than 15 s to send 35 rows at once, while rows a minute away stall it.
 */
const AT_ONCE_MS = 15_000

const count = async (where: string) =>
  (await t.pool.query(`select count(*)::int as n from mailer.email_outbox where ${where}`)).rows[0]
    .n as number

/**
 * Until `n` rows are sent, bounded by progress, not total time: on a loaded machine (CI's shared 2
 * cores) a drain of 30 rows outlasted a 10 s bound while still sending; one that stops still fails.
 */
const allSent = (n: number) => pollUntilCount(() => count(`status = 'sent'`), n, 10_000)

/**
 * 30 rows due, oldest first: the worker's claim meets 10 (WORKER_CONCURRENCY), Entra refuses, they
 * go back a minute (database time); the other 20 and 5 enqueued during the refusal are named.
 */
async function refused(): Promise<OutageRun> {
  const r = await thirtyDue(SECRET_REFUSED)
  await pollUntil(async () => {
    if (r.fake.tokenRequests.length < 1 || r.engine.drainer.status().inFlight > 0) return undefined
    if (r.transport.blockedForMs() === 0) return undefined
    return (await count(`status = 'sending'`)) === 0 ? true : undefined
  }, 30_000)
  for (let i = 0; i < 5; i++) await enqueue(t)
  r.engine.drainer.wake()
  await pollUntil(
    async () =>
      (await count(`status = 'pending' and last_error_code = 'AADSTS7000215'`)) === 35
        ? true
        : undefined,
    30_000,
  )
  return r
}

/** Polls (bounded) until every row is sent; returns the ms it took and each status's count. */
async function timeToSent(since: number): Promise<{ ms: number; statuses: unknown[] }> {
  await pollUntilCount(() => count(`status = 'sent'`), 35, AT_ONCE_MS).catch(() => undefined)
  const s = await t.pool.query(
    'select status, count(*)::int as n from mailer.email_outbox group by 1 order by 1',
  )
  return { ms: Date.now() - since, statuses: s.rows }
}

describe('a refused credential fixed', () => {
  test('by a restart with the new secret (fly secrets set): every waiting row goes at once, those a refused claim gave back a minute too', async () => {
    const r = await refused()
    // The ten the claim met were given back to the end of the refusal's cooldown.
    expect(await count(`status = 'pending' and send_at > now() + interval '50 seconds'`)).toBe(10)
    await r.stop()
    run = null
    const fixedAt = Date.now()
    run = await startOutage(t, { rows: 0, cert, tokenFault: null })
    const { ms, statuses } = await timeToSent(fixedAt)
    console.log(
      `[credential fixed by a restart] 35 rows (10 met by the refusal) all sent ${ms} ms after the start`,
    )
    expect(statuses).toEqual([{ status: 'sent', n: 35 }])
  })

  test('in Entra without a restart (a certificate uploaded): every row goes once the cooldown lets Entra be asked again, within a minute of the fix', async () => {
    const r = await refused()
    r.fake.setFaults({})
    // A minute passes on both clocks (the token source's, the rows' waits in database time).
    r.clock.advance(COOLDOWN_PASSED_MS)
    await t.pool.query(
      `update mailer.email_outbox set send_at = send_at - interval '61 seconds' where status = 'pending'`,
    )
    const fixedAt = Date.now()
    r.engine.drainer.wake()
    const { ms, statuses } = await timeToSent(fixedAt)
    console.log(`[credential fixed in Entra] 35 rows all sent ${ms} ms after the cooldown's end`)
    expect(statuses).toEqual([{ status: 'sent', n: 35 }])
    expect(r.refreshes).toEqual(['failure AADSTS7000215', 'success'])
  })
})

describe('under MAILBOX_RATE_PER_MINUTE', () => {
  /** An expired client secret: the refusal an operator meets when one runs out. */
  const EXPIRED = { status: 401, error: 'invalid_client', aadsts: 7000222 }
  const codes = async () =>
    (
      await t.pool.query(
        `select status, last_error_code as code, count(*)::int as n from mailer.email_outbox
          group by 1, 2 order by 1, 2`,
      )
    ).rows
  /** Turns reserved for rows sent back to wait for them (reservePacing's horizon, 'queue ' || mailbox). */
  const reservedTurns = async () =>
    (
      await t.pool.query<{ n: number }>(
        `select count(*)::int as n from mailer.mailbox_pacing where mailbox like 'queue %'`,
      )
    ).rows[0]!.n
  /**
   * Refusal `k` (1-based) settled: Entra asked `k` times, nothing claimed or settling, the worker
   * held off, and every due row named (the block's pass made). Not within the bound: the rows are
   * read as they stand (a row held in the gate for its turn, rows sent back for theirs).
   */
  async function refusalSettled(r: OutageRun, k: number) {
    await pollUntil(async () => {
      if (r.fake.tokenRequests.length < k || r.engine.drainer.status().inFlight > 0)
        return undefined
      if (r.transport.blockedForMs() === 0) return undefined
      if ((await count(`status = 'sending'`)) > 0) return undefined
      const unnamed = `status = 'pending' and send_at <= now() and last_error_code is distinct from 'AADSTS7000222'`
      return (await count(unnamed)) === 0 ? true : undefined
    }, 30_000).catch(() => undefined)
  }

  test('every row waiting names the refusal, the rows a claim met too: none is sent back for a pacing turn, none reserves one, at each refusal', async () => {
    // Two a minute: a turn reserved for a row is a minute off at least, never due within the test.
    const r = await thirtyDue(EXPIRED, {}, 2)
    await refusalSettled(r, 1)
    // The claim's ten wait for the token's answer before the pacing gate: had they met the gate
    // first, one would take the mailbox's turn and meet the refusal, the other nine go back to
    // turns reserved for them (not due when the pass ran), named `mailbox_paced` at each refusal.
    expect(await codes()).toEqual([{ status: 'pending', code: 'AADSTS7000222', n: 30 }])
    expect(await reservedTurns()).toBe(0)
    // The next refusal: past the cooldown the next ten are met, and so named.
    r.clock.advance(COOLDOWN_PASSED_MS)
    await t.pool.query(
      `update mailer.email_outbox set send_at = send_at - interval '10 minutes' where status = 'pending'`,
    )
    r.engine.drainer.wake()
    await refusalSettled(r, 2)
    expect(await codes()).toEqual([{ status: 'pending', code: 'AADSTS7000222', n: 30 }])
    expect(await reservedTurns()).toBe(0)
    expect(r.fake.tokenRequests).toHaveLength(2)
    expect(r.fake.accepted).toHaveLength(0)
  })

  test('with the credential working, pacing holds as before: one send per turn, the claim’s other rows sent back to turns reserved an interval apart', async () => {
    // One a minute: no second turn comes within the test.
    const r = await thirtyDue(null, {}, 1)
    // Read in the database: the fake accepts a message before its settlement is written. Settled:
    // one sent, one waiting in place for the mailbox's next turn, the 28 others sent back to theirs.
    const settled = [
      { status: 'pending', code: 'mailbox_paced', n: 28 },
      { status: 'sending', code: null, n: 1 },
      { status: 'sent', code: null, n: 1 },
    ]
    await pollUntil(
      async () => (Bun.deepEquals(await codes(), settled) ? true : undefined),
      30_000,
    ).catch(() => undefined)
    expect(await codes()).toEqual(settled)
    // Each row due at its own turn, in the order reserved: the turns one interval apart back from
    // the horizon's last (reservePacing), as many as rows. Due at the turn, or as much after it as
    // the row's settlement came after its turn's reservation (the delay to the turn is added to
    // the settlement's now()), never before it and not a turn later. Their due times alone are not
    // an interval apart: a row settled 145 ms late under a CPU hog was due 145 ms closer to the
    // next one (a gap of 59.855 s). The rate holds at the send, whose turn takePacing takes.
    const lateness = (
      await t.pool.query<{ late: number }>(
        `with h as (select next_at - turn_interval as last, turn_interval as i
                      from mailer.mailbox_pacing where mailbox like 'queue %'),
              p as (select send_at, row_number() over (order by send_at desc) - 1 as k
                      from mailer.email_outbox where last_error_code = 'mailbox_paced')
         select extract(epoch from p.send_at - (h.last - p.k * h.i))::float8 as late
           from p, h order by p.send_at`,
      )
    ).rows.map((x) => x.late)
    expect(lateness).toHaveLength(28)
    expect(lateness.filter((s) => s < 0 || s >= 60)).toEqual([])
    expect(r.fake.accepted).toHaveLength(1)
    expect(await count(`status = 'sent'`)).toBe(1)
    expect(r.fake.tokenRequests).toHaveLength(1)
  })
})

describe('tokenWaitRowsDue', () => {
  test('brings due the pending rows given back for want of a token, bounded per statement; a certificate past its end too; not a graph_* wait, a pacing turn, another code or a row past its expiresAt', async () => {
    const later = `now() + interval '1 hour'`
    const ids: string[] = []
    for (let i = 0; i < 8; i++) ids.push(await enqueue(t))
    const set = (id: string | undefined, code: string, extra = `send_at = ${later}`) =>
      t.pool.query(`update mailer.email_outbox set last_error_code = $2, ${extra} where id = $1`, [
        id,
        code,
      ])
    await set(ids[0], 'AADSTS7000215')
    await set(ids[1], 'certificate_expired')
    await set(ids[2], 'token_http_503')
    await set(ids[3], 'graph_unreachable')
    await set(ids[4], 'mailbox_paced')
    await set(ids[5], 'ErrorInvalidUser')
    await set(
      ids[6],
      'AADSTS700027',
      `send_started_at = now() - interval '2 minutes', expires_at = now() - interval '1 second', send_at = ${later}`,
    )
    await set(ids[7], 'AADSTS700027', `status = 'failed', send_at = ${later}`)
    expect(await tokenWaitRowsDue(t.db, 1)).toBe(1)
    expect(await everyTokenWaitRowDue(t.db, 1)).toBe(2)
    const due = await t.pool.query<{ id: string }>(
      `select id::text from mailer.email_outbox where send_at <= now() order by id`,
    )
    expect(due.rows.map((x) => x.id)).toEqual(ids.slice(0, 3))
    expect(await tokenWaitRowsDue(t.db)).toBe(0)
  })
})

test('the transport tells of a token that comes after none: the first, the first after a refusal, not one after a token; at once to a listener that comes after it', async () => {
  const clock = new ManualClock()
  const fake = await startFakeGraph({ certificates: [cert.certPem], now: clock.now })
  try {
    fake.setFaults({ token: [SECRET_REFUSED] })
    const graph = createGraphTransport(
      graphConfigFor(fake, { certificate: cert.certPem, privateKey: cert.keyPem }),
      'sender@example.com',
      { fetch, clock, log: silentLogger },
    )
    const told: string[] = []
    graph.onTokenCame(() => told.push('first'))
    await expect(graph.tokens.getToken()).rejects.toThrow()
    expect(told).toEqual([])
    clock.advance(COOLDOWN_PASSED_MS)
    await graph.tokens.getToken()
    expect(told).toEqual(['first'])
    graph.onTokenCame(() => told.push('late'))
    expect(told).toEqual(['first', 'late'])
    // A token again (the cached one's use over): nothing new to tell.
    clock.advance(2 * 3600_000)
    await graph.tokens.getToken()
    expect(fake.tokenRequests).toHaveLength(3)
    expect(told).toEqual(['first', 'late'])
  } finally {
    await fake.stop()
  }
})
