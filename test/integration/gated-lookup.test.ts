// Behind a closed gate (send limits, pacing: Graph's), an interrupted send is resolved under its permit before any new send.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { owedLookupGiveBack } from '../../src/outbox/owed-give-back.ts'
import { mailboxKey, type SendGate } from '../../src/outbox/send-gate.ts'
import { useTestDb } from '../support/db.ts'
import { diedMidSendPastExpiry } from '../support/died-mid-send.ts'
import { attemptsOf, createTestEngine, enqueue, rowOf, type TestEngine } from '../support/engine.ts'
import { settledFor } from '../support/events.ts'
import { lookupWaitOf, WAITING_PAST_EXPIRY } from '../support/lookup-wait.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
let engine: TestEngine | null = null
afterEach(async () => {
  await engine?.stop()
  engine = null
})

// Closed, so each row takes gated-send.ts's way (a permit, then the lookup, then the last check);
// every permit is granted at once.
const grantingGate: SendGate = {
  open: false,
  acquire: async () => ({ release: async () => {} }),
  pause: async () => {},
}

/**
 * An engine behind `gate`'s acquire (granting otherwise) whose mailbox lookup finds every message;
 * `asked`: the outbox ids it looked up.
 */
function lookingUpBehind(acquire: SendGate['acquire']): { engine: TestEngine; asked: string[] } {
  const asked: string[] = []
  const looking = createTestEngine(t, {
    deps: {
      gate: { ...grantingGate, acquire },
      lookup: async (mail) => {
        asked.push(mail.outboxId)
        return 'found'
      },
    },
  })
  engine = looking
  return { engine: looking, asked }
}

/** A row whose earlier send started and never learned its outcome (its worker died mid-send). */
async function interruptedRow(): Promise<string> {
  const id = await enqueue(t)
  await t.pool.query(
    `update mailer.email_outbox set send_started_at = now() - interval '2 minutes' where id = $1`,
    [id],
  )
  return id
}

test('found in the mailbox: marked sent without sending again', async () => {
  const id = await interruptedRow()
  const asked: string[] = []
  engine = createTestEngine(t, {
    deps: {
      gate: grantingGate,
      lookup: async (mail) => {
        asked.push(mail.outboxId)
        return 'found'
      },
    },
  })
  await engine.start()
  expect(await engine.events.waitFor(settledFor(id))).toMatchObject({ outcome: 'sent' })
  expect(asked).toEqual([id])
  expect(engine.sender.calls).toEqual([])
  expect(await rowOf(t, id)).toMatchObject({ status: 'sent', send_started_at: null })
})

test('no lookup and policy hold: failed for review, not sent', async () => {
  const id = await interruptedRow()
  engine = createTestEngine(t, { deps: { gate: grantingGate, ambiguousPolicy: 'hold' } })
  await engine.start()
  expect(await engine.events.waitFor(settledFor(id))).toMatchObject({ outcome: 'failed' })
  expect(engine.sender.calls).toEqual([])
  expect(await rowOf(t, id)).toMatchObject({ status: 'failed', last_error_code: 'ambiguous_send' })
})

test('no lookup and policy hold, its mailbox paused: failed for review at once, no permit asked for a decision that asks Graph nothing', async () => {
  const id = await interruptedRow()
  let acquired = 0
  engine = createTestEngine(t, {
    deps: {
      gate: {
        ...grantingGate,
        acquire: async () => {
          acquired++
          return { pausedForMs: 20 * 60_000 }
        },
      },
      ambiguousPolicy: 'hold',
    },
  })
  await engine.start()
  expect(await engine.events.waitFor(settledFor(id))).toMatchObject({ outcome: 'failed' })
  expect(await rowOf(t, id)).toMatchObject({ status: 'failed', last_error_code: 'ambiguous_send' })
  expect(acquired).toBe(0)
  expect(engine.sender.calls).toEqual([])
})

test('claimed past its expiresAt with its mailbox paused (no lookup now): waits pending, its mark kept, until the pause ends, then is looked up and settles sent, never sent again', async () => {
  const id = await enqueue(t)
  await diedMidSendPastExpiry(t, id)
  // Paused at its first claim (a moment's pause, as the test's own); granted once that is over.
  let acquired = 0
  const { engine, asked } = lookingUpBehind(async () =>
    ++acquired === 1 ? { pausedForMs: 1_500 } : { release: async () => {} },
  )
  await engine.start()
  expect(await engine.events.waitFor(settledFor(id))).toMatchObject({
    outcome: 'throttled',
    code: 'mailbox_paused',
  })
  expect(await lookupWaitOf(t, id)).toEqual(WAITING_PAST_EXPIRY)
  expect(await engine.events.waitFor(settledFor(id, 'sent'))).toMatchObject({ outcome: 'sent' })
  expect(asked).toEqual([id])
  expect(engine.sender.calls).toEqual([])
  expect(await rowOf(t, id)).toMatchObject({ status: 'sent', send_started_at: null })
})

test('claimed past its expiresAt with its mailbox paused longer than the lookup grace plus an hour past it: failed expired saying the interrupted send may have delivered it, not "not sent"', async () => {
  const id = await enqueue(t)
  await diedMidSendPastExpiry(t, id)
  const { engine, asked } = lookingUpBehind(async () => ({ pausedForMs: 2 * 3_600_000 }))
  await engine.start()
  await engine.events.waitFor(settledFor(id))
  expect(asked).toEqual([])
  expect(await rowOf(t, id)).toMatchObject({
    status: 'failed',
    attempts: 1,
    last_error_code: 'expired',
    last_error: 'expiresAt passed; an interrupted send may have delivered it',
  })
  // The reclaim of the dead worker's lease, then the claim that found the row expired, counting no
  // attempt (nothing was sent again): numbered as the attempt whose send it names.
  expect(await attemptsOf(t, id, 'attempt, outcome, error_code')).toEqual([
    { attempt: 1, outcome: 'lease_expired', error_code: 'lease_expired' },
    { attempt: 1, outcome: 'expired', error_code: 'expired' },
  ])
})

test('an interrupted send not yet looked up, its mailbox paused past the row’s expiresAt: waits pending past it, its mark kept, to be looked up then, not failed expired as "not sent"', async () => {
  const id = await interruptedRow()
  await t.pool.query(
    `update mailer.email_outbox set expires_at = now() + interval '10 minutes' where id = $1`,
    [id],
  )
  const { engine, asked } = lookingUpBehind(async () => ({ pausedForMs: 20 * 60_000 }))
  await engine.start()
  expect(await engine.events.waitFor(settledFor(id))).toMatchObject({
    outcome: 'throttled',
    code: 'mailbox_paused',
  })
  expect(asked).toEqual([])
  expect(await lookupWaitOf(t, id)).toEqual(WAITING_PAST_EXPIRY)
})

test('a lookup past its row’s expiresAt held for a past sender’s owed probe (none out) goes back until the owed state ends, a minute at most, not for a second at a time', async () => {
  const id = await enqueue(t)
  await diedMidSendPastExpiry(t, id)
  const key = mailboxKey('past-sender@example.com')
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed)
     values ($1, now() - interval '1 minute', true)`,
    [key],
  )
  // The owed state's end brings the row due by its note (owedLookupGiveBack), so it may wait long.
  const back = await owedLookupGiveBack(t.db, key, id, 0)
  expect(back.pausedForMs).toBeGreaterThan(30_000)
  await t.pool.query('delete from mailer.mailbox_pacing where mailbox = $1', [key])
})
