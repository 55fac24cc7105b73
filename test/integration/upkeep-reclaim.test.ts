// The upkeep's reclaim: it leaves the leases its own settlement is recording, takes back the rest that ended, and counts the rows it ends.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { systemClock } from '../../src/clock.ts'
import { createLogger, type Logger, silentLogger } from '../../src/log.ts'
import { claimBatch, type Lease } from '../../src/outbox/claim.ts'
import type { EngineEvent } from '../../src/outbox/events.ts'
import { EXPIRY_SWEEP_LIMIT } from '../../src/outbox/expiry-sweep.ts'
import { createLeaseUpkeep } from '../../src/outbox/lease-upkeep.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue, rowOf } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const endLeases = (ids: string[]) =>
  t.pool.query(
    `update mailer.email_outbox set lease_expires_at = now() - interval '1 second'
      where id = any($1::bigint[])`,
    [ids],
  )

function upkeepOf(
  held: Map<string, Lease>,
  settling: (l: Lease) => boolean,
  config = { heartbeatSeconds: 20, leaseSeconds: 60, maxAttempts: 3 },
  log: Logger = silentLogger,
) {
  const events: EngineEvent[] = []
  const upkeep = createLeaseUpkeep({
    dbName: 'test',
    db: t.db,
    worker: { id: 'w1', host: 'h', pid: 1, version: 't' },
    config,
    clock: systemClock,
    log,
    onEvent: (e) => events.push(e),
    held,
    settling,
    wake: () => {},
  })
  return { upkeep, events }
}

/**
 * A row whose attempt 1's send was interrupted by its worker's stop, then one lookup's stop, its
 * expiresAt passed: the next stop of its lookup is the third in a row.
 */
async function stoppedTwicePastExpiry() {
  const id = await enqueue(t, undefined, { expiresAt: new Date(Date.now() + 60_000).toISOString() })
  await t.pool.query(
    `update mailer.email_outbox set attempts = 1, send_started_at = now() - interval '2 minutes',
            expires_at = now() - interval '1 second', send_at = now() - interval '2 seconds'
      where id = $1`,
    [id],
  )
  await t.pool.query(
    `insert into mailer.email_attempts (outbox_id, attempt, worker_id, outcome, error_code, error)
     select $1, 1, 'dead', 'lease_expired', 'lease_expired', 'the worker holding the lease stopped during the send; outcome unknown'
       from generate_series(1, 2)`,
    [id],
  )
  return id
}

test('of its own ended leases, it takes back those not yet handed to the settlement and leaves those that were', async () => {
  const recording = await enqueue(t)
  const waiting = await enqueue(t)
  const { leases } = await claimBatch(t.db, {
    limit: 2,
    workerId: 'w1',
    leaseSeconds: 60,
    defaultMaxAttempts: 3,
  })
  // A one-second lease length: the timers' reclaim comes a second after the start. Their
  // heartbeat, 20 s apart, would extend the leases held (as the start's first() does).
  const held = new Map<string, Lease>()
  const { upkeep } = upkeepOf(held, (l) => l.id === recording, {
    heartbeatSeconds: 20,
    leaseSeconds: 1,
    maxAttempts: 3,
  })
  await upkeep.first()
  for (const l of leases) held.set(l.id, l)
  // Heartbeats failed meanwhile (the database away): both leases ended unreclaimed.
  await endLeases([recording, waiting])
  upkeep.startTimers()
  try {
    await pollUntil(async () => ((await rowOf(t, waiting)).status === 'pending' ? true : undefined))
  } finally {
    await upkeep.stopTimers()
  }
  expect(await rowOf(t, recording)).toMatchObject({ status: 'sending', lease_owner: 'w1' })
  expect(await rowOf(t, waiting)).toMatchObject({
    status: 'pending',
    last_error_code: 'lease_expired',
  })
})

test('a row it ends, out of attempts or cancelled, is counted as a settlement would count it', async () => {
  const spent = await enqueue(t, undefined, { maxAttempts: 1 })
  const cancelled = await enqueue(t)
  await claimBatch(t.db, { limit: 2, workerId: 'dead', leaseSeconds: 60, defaultMaxAttempts: 3 })
  await t.pool.query('update mailer.email_outbox set cancel_requested_at = now() where id = $1', [
    cancelled,
  ])
  await endLeases([spent, cancelled])
  const { upkeep, events } = upkeepOf(new Map(), () => false)
  await upkeep.first()
  expect(events.filter((e) => e.type === 'settled')).toEqual([
    { type: 'settled', db: 'test', id: spent, outcome: 'failed', code: 'lease_expired' },
    { type: 'settled', db: 'test', id: cancelled, outcome: 'cancelled' },
  ])
})

test('a lookup past its expiresAt that lost its worker a third time in a row ends expired, counted as the sweep counts such a row', async () => {
  const id = await stoppedTwicePastExpiry()
  await claimBatch(t.db, { limit: 1, workerId: 'dead', leaseSeconds: 60, defaultMaxAttempts: 3 })
  await endLeases([id])
  const { upkeep, events } = upkeepOf(new Map(), () => false)
  await upkeep.first()
  expect(events.filter((e) => e.type === 'settled')).toEqual([
    { type: 'settled', db: 'test', id, outcome: 'expired', code: 'expired' },
  ])
  expect(await rowOf(t, id)).toMatchObject({
    status: 'failed',
    attempts: 1,
    last_error_code: 'expired',
  })
})

test('a row it fails, out of attempts or expired, logs one "message failed" line with its id, attempt and code, as a settlement does', async () => {
  const spent = await enqueue(t, undefined, {
    maxAttempts: 1,
    tenant: 'acme',
    correlationId: 'c-1',
  })
  const looked = await stoppedTwicePastExpiry()
  const waiting = await enqueue(t)
  await claimBatch(t.db, { limit: 3, workerId: 'dead', leaseSeconds: 60, defaultMaxAttempts: 3 })
  await endLeases([spent, looked, waiting])
  const lines: Record<string, unknown>[] = []
  const log = createLogger('debug', (line) => lines.push(JSON.parse(line)))
  const { upkeep } = upkeepOf(new Map(), () => false, undefined, log)
  await upkeep.first()
  expect(lines.filter((l) => l.msg === 'message failed')).toEqual([
    {
      ts: expect.any(String),
      level: 'warn',
      msg: 'message failed',
      db: 'test',
      outboxId: spent,
      tenant: 'acme',
      attempt: 1,
      correlationId: 'c-1',
      outcome: 'failed',
      status: 'failed',
      code: 'lease_expired',
    },
    {
      ts: expect.any(String),
      level: 'warn',
      msg: 'message failed',
      db: 'test',
      outboxId: looked,
      tenant: 'default',
      // As its history numbers it: the send its lookup looked up.
      attempt: 1,
      correlationId: null,
      outcome: 'expired',
      status: 'failed',
      code: 'expired',
    },
  ])
  // The row reclaimed to pending has no line of its own (the aggregate names it); no addresses.
  expect(lines.filter((l) => l.outboxId === waiting)).toEqual([])
  expect(JSON.stringify(lines)).not.toContain('rcpt@example.com')
  expect(JSON.stringify(lines)).not.toContain('Hello')
})

test('a sweep that filled its batch comes again at once, not a lease length later', async () => {
  const n = EXPIRY_SWEEP_LIMIT + 20
  await t.pool.query(
    `insert into mailer.email_outbox (message, send_at, expires_at)
     select jsonb_build_object('to', jsonb_build_array(jsonb_build_object('address', 'a@example.com')),
                               'subject', 's', 'text', 't'),
            now() - interval '1 hour', now() - interval '1 minute'
       from generate_series(1, $1)`,
    [n],
  )
  // A lease length of a minute: the next reclaim would otherwise come a minute on.
  const { upkeep } = upkeepOf(new Map(), () => false)
  await upkeep.first()
  upkeep.startTimers()
  try {
    await pollUntil(async () => {
      const { rows } = await t.pool.query<{ n: number }>(
        `select count(*)::int as n from mailer.email_outbox where status = 'failed'`,
      )
      return rows[0]!.n === n ? true : undefined
    })
  } finally {
    await upkeep.stopTimers()
  }
})

test('rows a former MAIL_FROM’s pause held, left while this worker’s own MAIL_FROM stood paused, come due at a later reclaim once it stands no more, not at the old pause’s end', async () => {
  const [OLD, OWN] = ['old@example.com', 'own@example.com']
  // The reset keeps mailer.mailbox_pacing: no pause of an earlier test stands.
  await t.pool.query(
    `update mailer.mailbox_pacing set next_at = now(), probe_owed = false, probe_id = null, probe_due_at = null`,
  )
  // The old address's refusal, its probe owed and no live worker sending from it; the worker's own
  // MAIL_FROM paused too (a throttle at its start).
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval, probe_owed, pause_reason)
     values ($1, now() + interval '5 minutes', interval '0', true, 'refused'),
            ($2, now() + interval '5 minutes', interval '0', false, 'throttle')
     on conflict (mailbox) do update set next_at = excluded.next_at, turn_interval = excluded.turn_interval,
                                         probe_owed = excluded.probe_owed, pause_reason = excluded.pause_reason`,
    [OLD, OWN],
  )
  const id = await enqueue(t)
  await t.pool.query(
    `update mailer.email_outbox set send_at = now() + interval '5 minutes', last_error_code = 'mailbox_paused'
      where id = $1`,
    [id],
  )
  const due = async () =>
    (
      await t.pool.query<{ due: boolean }>(
        `select send_at <= now() as due from mailer.email_outbox where id = $1`,
        [id],
      )
    ).rows[0]!.due
  let woken = 0
  const upkeep = createLeaseUpkeep({
    dbName: 'test',
    db: t.db,
    worker: { id: 'w-own', host: 'h', pid: 1, version: 't', probeMailbox: OWN },
    config: { heartbeatSeconds: 20, leaseSeconds: 60, maxAttempts: 3 },
    clock: systemClock,
    log: silentLogger,
    held: new Map(),
    settling: () => false,
    wake: () => woken++,
  })
  try {
    // The reclaim clears the old address's probe; the row waits, its own MAIL_FROM paused.
    await upkeep.first()
    const probe = await t.pool.query(
      `select probe_owed from mailer.mailbox_pacing where mailbox = $1`,
      [OLD],
    )
    expect({ probeOwed: probe.rows[0]?.probe_owed, due: await due() }).toEqual({
      probeOwed: false,
      due: false,
    })
    // Its own pause over (and no probe owed): the next reclaim brings the row due and wakes.
    await t.pool.query(`update mailer.mailbox_pacing set next_at = now() where mailbox = $1`, [OWN])
    await upkeep.first()
    expect({ due: await due(), woken }).toEqual({ due: true, woken: 1 })
  } finally {
    await upkeep.stopTimers()
    await t.pool.query(
      `update mailer.mailbox_pacing set next_at = now(), probe_owed = false where mailbox = any($1)`,
      [[OLD, OWN]],
    )
  }
})
