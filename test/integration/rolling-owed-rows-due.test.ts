// A rolling deploy that changes MAIL_FROM: rows naming the old address, given back while its probe is owed, wait for the probe's end, not 1 s, and come due at its answer or clear.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { createLogger } from '../../src/log.ts'
import { createHeldOwedRows, heldOwedRowsDue } from '../../src/outbox/held-owed-rows.ts'
import { probeAnswered } from '../../src/outbox/owed-probe.ts'
import { mailboxKey } from '../../src/outbox/send-gate.ts'
import { createSideStatements } from '../../src/outbox/side-statements.ts'
import { databaseAway } from '../support/database-away.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { startThrottlingGraph, useGraphPerTest } from '../support/graph-per-test.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'
import { pausedOwedAndIdle } from '../support/owed-pause.ts'
import { sleepSteppedClock } from '../support/sleep-stepped-clock.ts'
import { stillNotDue } from '../support/still-not-due.ts'
import { graphTransport, startTransportWorker } from '../support/transport-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
/** The release being replaced sends from OLD, the next one from NEW. */
const OLD = 'outbox@example.com'
const NEW = 'outbox-next@example.com'
const NAMED = 4

const g = useGraphPerTest()

const startWorker = (id: string, mailFrom: string, rate = '0'): Promise<TestEngine> =>
  startTransportWorker(t, g.engines, graphTransport(g.fake!, mailFrom, rate), {
    workerId: id,
    mailFrom,
    // Past the test's window: the probe's hung request is not given up and sent again meanwhile.
    sendTimeoutMs: 30_000,
  })

/**
 * OLD paused with its probe owed; NAMED rows naming OLD due (expiring in `expiresInS` if given), one
 * of them the probe, out and hanging; a worker of NEW started and every other named row given back
 * by it (or settled otherwise). Returns the rows and the probe.
 */
async function ownedRowsGivenBack(
  rate = '0',
  expiresInS: number | null = null,
): Promise<{ named: string[]; probe: string; fresh: TestEngine }> {
  g.fake = await startThrottlingGraph(g, OLD, [OLD, NEW])
  await enqueue(t)
  const old = await startWorker('worker-old', OLD, rate)
  await pausedOwedAndIdle(t, OLD, old)
  const named: string[] = []
  for (let i = 0; i < NAMED; i++)
    named.push(
      await enqueue(
        t,
        { to: 'rcpt@example.com', subject: 'Hello', text: 'Hi', from: OLD },
        { sendAt: new Date(Date.now() + 86_400_000).toISOString() },
      ),
    )
  // The probe hangs: OLD's first send. A row sent once the owed state ended goes out.
  let probeHung = false
  g.fake.setFaults({
    pickSendMail: (mailbox) => {
      if (mailbox !== OLD || probeHung) return undefined
      probeHung = true
      return 'hang'
    },
  })
  await t.pool.query(
    `with p as (update mailer.mailbox_pacing set next_at = now() - interval '1 minute' where mailbox = $1 returning 1)
     update mailer.email_outbox set send_at = now() - interval '1 minute',
            expires_at = now() + make_interval(secs => $3::float8) where id = any($2::bigint[])`,
    [mailboxKey(OLD), named, expiresInS],
  )
  // The old release's probe first (see rolling-mail-from-owed-probe.test.ts), then the new release.
  old.drainer.wake()
  const probe = await pollUntil(async () => {
    const p = await t.pool.query<{ id: string | null }>(
      `select p.probe_id::text as id from mailer.mailbox_pacing p
        where p.mailbox = $1 and p.probe_owed
          and exists (select from mailer.email_outbox o where o.id = p.probe_id and o.send_started_at is not null)`,
      [mailboxKey(OLD)],
    )
    return p.rows[0]?.id ?? undefined
  }, 30_000)
  const fresh = await startWorker('worker-new', NEW, rate)
  fresh.drainer.wake()
  await pollUntil(async () => {
    const r = await t.pool.query<{ n: number }>(
      `select count(*)::int as n from mailer.email_outbox o
        where o.id = any($1::bigint[])
          and (o.status in ('failed', 'sent') or exists (select from mailer.email_attempts a
                                               where a.outbox_id = o.id and a.error_code = 'mailbox_paused'))`,
      [named.filter((id) => id !== probe)],
    )
    return r.rows[0]!.n === NAMED - 1 ? true : undefined
  }, 30_000)
  return { named, probe, fresh }
}

/**
 * Waits (within 20 s, well before the probe's 30 s deadline: brought due, not waited out) for `rows`
 * sent; the rows Graph's send requests named, one entry per request, sorted. A miss names where each
 * unsent row stands (due and unclaimed, sending, given back again and to when, or ended).
 */
async function sentRequests(rows: string[]): Promise<(string | null)[]> {
  await pollUntil(async () => {
    const r = await t.pool.query<{ n: number }>(
      `select count(*)::int as n from mailer.email_outbox where id = any($1::bigint[]) and status = 'sent'`,
      [rows],
    )
    return r.rows[0]!.n === rows.length ? true : undefined
  }, 20_000).catch(async (e: Error) => {
    const r = await t.pool.query(
      `select o.id::text, o.status, round(extract(epoch from o.send_at - now())::numeric, 1)::float8 as due_in_s,
              o.last_error_code as code, o.lease_owner, o.send_started_at is not null as marked,
              (select count(*) from mailer.owed_probe_lookups w where w.outbox_id = o.id)::int as noted,
              (select string_agg(a.outcome || ':' || coalesce(a.error_code, '-'), ' ' order by a.id)
                 from mailer.email_attempts a where a.outbox_id = o.id) as history
         from mailer.email_outbox o where o.id = any($1::bigint[]) and o.status <> 'sent' order by o.id`,
      [rows],
    )
    const asked = g.fake!.requests.filter((q) => q.kind === 'sendMail').map((q) => q.outboxId)
    const workers = g.engines.map((w) => ({
      inFlight: w.drainer.status().inFlight,
      listener: w.listener.state(),
      claimed: claimedBy(w),
    }))
    throw new Error(
      `${e.message}: unsent ${JSON.stringify(r.rows)}; sendMail asked for ${JSON.stringify(asked)}; workers ${JSON.stringify(workers)}`,
    )
  })
  return g
    .fake!.requests.filter((q) => q.kind === 'sendMail' && rows.includes(q.outboxId ?? ''))
    .map((q) => q.outboxId)
    .sort()
}

const claimedBy = (w: TestEngine) =>
  w.events.events.reduce((n, e) => n + (e.type === 'claimed' ? e.count : 0), 0)

for (const rate of ['0', '600', '6000'])
  test(`MAILBOX_RATE_PER_MINUTE=${rate}: rows naming the old MAIL_FROM go back due at its owed probe's end, claimed once while it is owed; its answer (the released statement) brings them due and they go out once`, async () => {
    const { named, probe, fresh } = await ownedRowsGivenBack(rate)
    const others = named.filter((id) => id !== probe)
    // The probe ends by its send deadline, or its lease's end: not due before that.
    const due = await t.pool.query<{ n: number }>(
      `select count(*)::int as n from mailer.email_outbox o, mailer.email_outbox p
      where p.id = $2::bigint and o.id = any($1::bigint[]) and o.status = 'pending'
        and o.send_at >= greatest(p.send_deadline_at, p.lease_expires_at)`,
      [others, probe],
    )
    expect(due.rows[0]!.n).toBe(NAMED - 1)
    // Claimed once each while the probe is owed. Paced, a row that finds another of the mailbox
    // waiting in place learns of the owed probe with its reservation: no turn reserved and spent.
    expect(claimedBy(fresh)).toBe(NAMED - 1)
    // The old release records its probe's answer (owed-probe.ts, unchanged): the rows come due then,
    // and a notification wakes the workers (their backstop poll is 10 minutes away).
    g.fake!.setFaults({ pickSendMail: () => undefined })
    await probeAnswered(t.db, { mailbox: mailboxKey(OLD), id: probe })
    expect(await sentRequests(others)).toEqual([...others].sort())
  })

test("a row expiring before the owed probe surely ends is not failed for it: it goes back due before its expiresAt, and goes out at the probe's answer", async () => {
  // The probe's deadline is 30 s away (sendTimeoutMs), its lease's end later still.
  const { named, probe } = await ownedRowsGivenBack('0', 25)
  const others = named.filter((id) => id !== probe)
  const r = await t.pool.query<{ status: string; code: string | null }>(
    `select status, last_error_code as code from mailer.email_outbox where id = any($1::bigint[]) order by id`,
    [others],
  )
  expect(r.rows).toEqual(others.map(() => ({ status: 'pending', code: 'mailbox_paused' })))
  g.fake!.setFaults({ pickSendMail: () => undefined })
  await probeAnswered(t.db, { mailbox: mailboxKey(OLD), id: probe })
  expect(await sentRequests(others)).toEqual([...others].sort())
})

test("a row given back as the owed probe ends (its answer committed between the gate's read and the give-back) still comes due at once", async () => {
  // The answer lands while each give-back is written: in its own statement, before the row is
  // pending, so 0092's trigger cannot see it (as a commit between the two would leave it).
  await t.pool.query(`create function public.probe_answered_at_give_back() returns trigger language plpgsql as $$
    begin
      if old.status = 'sending' and new.status = 'pending' and new.last_error_code = 'mailbox_paused' then
        update mailer.mailbox_pacing set probe_owed = false, probe_id = null, probe_due_at = null
         where mailbox = '${mailboxKey(OLD)}' and probe_owed;
      end if;
      return new;
    end $$`)
  await t.pool.query(`create trigger probe_answered_at_give_back before update on mailer.email_outbox
    for each row execute function public.probe_answered_at_give_back()`)
  try {
    const { named, probe } = await ownedRowsGivenBack()
    const others = named.filter((id) => id !== probe)
    const givenBack = await t.pool.query<{ n: number }>(
      `select count(distinct outbox_id)::int as n from mailer.email_attempts
        where outbox_id = any($1::bigint[]) and error_code = 'mailbox_paused'`,
      [others],
    )
    expect(givenBack.rows[0]!.n).toBeGreaterThan(0)
    // Well before the probe's 30 s deadline, which they were given back to.
    expect(await stillNotDue(t, others)).toEqual([])
  } finally {
    await t.pool.query('drop trigger probe_answered_at_give_back on mailer.email_outbox')
    await t.pool.query('drop function public.probe_answered_at_give_back()')
  }
})

test('the stale-probe clear brings the rows given back due too', async () => {
  const { named, probe } = await ownedRowsGivenBack()
  const others = named.filter((id) => id !== probe)
  g.fake!.setFaults({ pickSendMail: () => undefined })
  // As the reclaim's stale_probes CTE clears it (stale-probes.ts) once no worker of OLD is live.
  await t.pool.query(
    `update mailer.mailbox_pacing set probe_owed = false, probe_id = null, probe_due_at = null
      where mailbox = $1 and probe_owed`,
    [mailboxKey(OLD)],
  )
  expect(await sentRequests(others)).toEqual([...others].sort())
})

for (const by of ['for update', 'update'] as const)
  test(`a row given back for the owed probe and locked (${by}) as the owed state ends comes due once its lock is released, not at the probe's end; the end does not wait for the lock`, async () => {
    const { named, probe } = await ownedRowsGivenBack()
    const others = named.filter((id) => id !== probe)
    const [locked] = others
    const held = await holdRowLocked(t.pool, locked!, by)
    try {
      // The probe's answer, as the old release records it: 0092's trigger skips the locked row.
      await probeAnswered(t.db, { mailbox: mailboxKey(OLD), id: probe })
      const free = others.filter((id) => id !== locked)
      expect(await sentRequests(free)).toEqual([...free].sort())
      // Asked while it is still locked: skipped, not waited for, and counted as still held.
      expect(await heldOwedRowsDue(t.db)).toEqual([locked!])
    } finally {
      await held.end('commit')
    }
    // Well before the probe's 30 s deadline, which it was given back to.
    expect(await stillNotDue(t, [locked!])).toEqual([])
    expect(await sentRequests([locked!])).toEqual([locked!])
  })

test("the owed state's end names a row it left locked by the row's id, never by the mailbox's address: every session LISTENing on the channel hears it", async () => {
  const id = await enqueue(
    t,
    { to: 'rcpt@example.com', subject: 'Hello', text: 'Hi', from: OLD },
    { sendAt: new Date(Date.now() + 86_400_000).toISOString() },
  )
  // As given back for the owed probe: due later, mailbox_paused.
  await t.pool.query(
    `with p as (insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed) values ($2, now(), true))
     update mailer.email_outbox set last_error_code = 'mailbox_paused' where id = $1::bigint`,
    [id, mailboxKey(OLD)],
  )
  const held = await holdRowLocked(t.pool, id)
  const listener = await t.pool.connect()
  const heard: string[] = []
  try {
    listener.on('notification', (n) => heard.push(n.payload ?? ''))
    await listener.query('listen mailer_outbox')
    await t.pool.query('update mailer.mailbox_pacing set probe_owed = false where mailbox = $1', [
      mailboxKey(OLD),
    ])
    await pollUntil(async () => (heard.length > 0 ? true : undefined), 5_000)
  } finally {
    await held.end('commit')
    await listener.query('unlisten *')
    listener.release()
  }
  expect(heard).toEqual([`owed-rows-held ${id}`])
})

test("bringing held rows due ends at its first failure (they wait for the probe's end, as before 0109), not a warning a second for as long as the database is away; a backstop poll's ask (once a second without LISTEN) warns nothing: its claim reports the outage", async () => {
  const db = await databaseAway()
  const lines: string[] = []
  const stop = new AbortController()
  const besides = createSideStatements()
  const held = createHeldOwedRows({
    db,
    clock: sleepSteppedClock().clock,
    log: createLogger('debug', (l) => lines.push(l)),
    signal: stop.signal,
    besides,
  })
  try {
    held.held()
    const ended = await Promise.race([
      besides.settled().then(() => 'ended'),
      pollUntil(async () => (lines.length >= 3 ? 'still trying' : undefined), 10_000),
    ])
    expect({ ended, warnings: lines.length }).toEqual({ ended: 'ended', warnings: 1 })
    held.polled()
    await besides.settled()
    expect(lines.length).toBe(1)
  } finally {
    stop.abort()
    await besides.settled()
    await db.destroy()
  }
})
