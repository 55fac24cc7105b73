// A bulk cancel looped while `more`: bounded by its start, each row acted on once, its cursor checked.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { encodeCursor } from '../../src/api/cursor.ts'
import { type BulkLoopOptions, bulkLoop, bulkLoopAnswers, leftOf } from './support/bulk-loop.ts'
import { enqueueSql, send, setState } from './support/harness.ts'
import { batchWaitsOn, holding as heldLock } from './support/held-row-lock.ts'
import { appOnOwnDatabase } from './support/own-database-app.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const s = appOnOwnDatabase()
// "Everything pending for acme", as an operator stopping a tenant's mail would say it.
const FILTER = { status: ['pending'], tenant: 'acme' }

/** A pending row of `tenant`, as the application's trigger enqueues it. */
const enqueued = (tenant = 'acme') => enqueueSql(s.t.pool, { tenant })

/** An operator's cancel loop (bulkLoop) over FILTER with limit 2 and the full token unless told otherwise. */
const cancelLoop = (o: Partial<BulkLoopOptions> = {}) =>
  bulkLoop(s.app, 'cancel', { tk: s.tk, filter: FILTER, ...o })

async function statuses(ids: string[]): Promise<string[]> {
  const { rows } = await s.t.pool.query(
    'select status from mailer.email_outbox where id = any($1::bigint[]) order by id',
    [ids],
  )
  return rows.map((r) => r.status)
}

/** A row its worker held in `sending` that is pending again, its send failed (a settlement clears its start). */
async function backToPending(id: string) {
  await s.t.pool.query(
    `update mailer.email_outbox set status = 'pending', lease_owner = null, lease_token = null,
       lease_expires_at = null, send_started_at = null, last_error_code = 'throttled' where id = $1`,
    [id],
  )
}

/** A row its worker held in `sending` that its send settled `sent`. */
async function settledSent(id: string) {
  await s.t.pool.query(
    `update mailer.email_outbox set status = 'sent', sent_at = now(), lease_owner = null,
       lease_token = null, lease_expires_at = null, send_started_at = null where id = $1`,
    [id],
  )
}

/** Polls (at most 5 s) until the cancel's update waits on a lock `holderPid`'s transaction holds. */
const cancelWaitsOn = (holderPid: number) => batchWaitsOn(s.t.pool, 'cancelled_now', holderPid)

/** A session in a transaction holding `id`'s row lock, or having run `statement` on it (held-row-lock.ts). */
const holding = (id: string, statement?: string) => heldLock(s.t.pool, id, statement)

/**
 * A cancel call over FILTER, limit 2, whose batch waits on `held`'s lock (another transaction holds
 * it: a worker's claim, a trigger's update) while `meanwhile` runs; its answer once the lock is let go.
 */
async function whileBatchWaitsOn(held: string, meanwhile: () => Promise<void>) {
  const holder = await holding(held)
  try {
    const call = send(s.app, 'POST', '/v1/outbox/cancel', {
      token: s.tk,
      body: { filter: FILTER, limit: 2 },
    })
    await cancelWaitsOn(holder.pid)
    await meanwhile()
    await holder.end()
    return await call
  } finally {
    await holder.end()
  }
}

/** Pending a, four rows being sent (their sends started), pending b: a call with limit 2 reads four in flight. */
async function fourInFlight() {
  const a = await enqueued()
  const flying = [await enqueued(), await enqueued(), await enqueued(), await enqueued()]
  const b = await enqueued()
  for (const id of flying) await setState(s.t.pool, id, 'sending', { sendStarted: true })
  return { a, flying, b }
}

describe('a bulk cancel loop', () => {
  test('a loop while a trigger keeps enqueueing rows it matches ends, and leaves the rows enqueued after it began', async () => {
    const [a, b, c] = [await enqueued(), await enqueued(), await enqueued()]
    // The application's trigger enqueues two more of acme's rows after each call.
    const later: string[] = []
    const calls = await cancelLoop({
      between: async () => {
        later.push(await enqueued(), await enqueued())
      },
    })
    expect(calls).toEqual([[a, b], [c]])
    expect(await statuses([a!, b!, c!])).toEqual(['cancelled', 'cancelled', 'cancelled'])
    expect(await statuses(later)).toEqual(['pending', 'pending', 'pending', 'pending'])
    // The next loop takes them.
    expect(await cancelLoop()).toEqual([later.slice(0, 2), later.slice(2), []])
  })

  test('a claimed row is asked once; one whose send had started as the loop passed it is left, as a bulk cancel leaves it', async () => {
    const filter = { tenant: 'acme' }
    const [started, a, claimed, b] = [
      await enqueued(),
      await enqueued(),
      await enqueued(),
      await enqueued(),
    ]
    await setState(s.t.pool, started!, 'sending', { sendStarted: true })
    await setState(s.t.pool, claimed!, 'sending')
    let first = true
    const calls = await cancelLoop({
      filter,
      between: async () => {
        // The started send's worker stops; its lease reclaimed, the row is pending again (with
        // the interrupted send's mark), behind the loop's position.
        if (first) {
          await s.t.pool.query(
            `update mailer.email_outbox set status = 'pending', lease_owner = null,
               lease_token = null, lease_expires_at = null where id = $1`,
            [started],
          )
        }
        first = false
      },
    })
    expect(calls).toEqual([[a, claimed], [b]])
    expect(await statuses([started!, claimed!])).toEqual(['pending', 'sending'])
    // A new loop takes it.
    expect(await cancelLoop({ filter })).toEqual([[started]])
  })

  test('a row whose send had started as a call passed it is named in its leftSending: the loop leaves it, a cancel by those ids takes it once pending again', async () => {
    const [a, started, b, c, d] = [
      await enqueued(),
      await enqueued(),
      await enqueued(),
      await enqueued(),
      await enqueued(),
    ]
    // Held in `sending`, its send started, as each call passes it; another tenant's too.
    const beta = await enqueued('beta')
    await setState(s.t.pool, started!, 'sending', { sendStarted: true })
    await setState(s.t.pool, beta!, 'sending', { sendStarted: true })
    let first = true
    const answers = await bulkLoopAnswers(s.app, 'cancel', {
      tk: s.tk,
      filter: FILTER,
      // Its send fails and the row is pending again before the loop ends, behind its position.
      between: async () => {
        if (first) await backToPending(started!)
        first = false
      },
    })
    expect(answers).toEqual([
      { items: [a, b], leftSending: [started] },
      { items: [c, d] },
      { items: [] },
    ])
    expect(await statuses([started!])).toEqual(['pending'])
    // The operator's follow-up: the ids the loop named, cancelled by id (no cursor, nothing else).
    const after = await send(s.app, 'POST', '/v1/outbox/cancel', {
      token: s.tk,
      body: { filter: { ids: [started] } },
    })
    expect(after.body).toMatchObject({ matched: 1, items: [{ id: started, outcome: 'cancelled' }] })
  })

  test('a row whose send fails while the call waits on a row its batch locks is named too: it was being sent as the call passed it', async () => {
    const [a, started, b] = [await enqueued(), await enqueued(), await enqueued()]
    await setState(s.t.pool, started!, 'sending', { sendStarted: true })
    // Meanwhile the started send fails: the row is pending again, behind the loop's position.
    const r = await whileBatchWaitsOn(b!, () => backToPending(started!))
    expect(r.body).toMatchObject({ items: [{ id: a }, { id: b }], more: true })
    expect((r.body as { leftSending?: string[] }).leftSending).toEqual([started!])
    expect(await statuses([started!])).toEqual(['pending'])
  })

  test('a row whose send succeeds while the call waits on a row its batch locks is not named: nothing is left of it', async () => {
    const [a, started, b] = [await enqueued(), await enqueued(), await enqueued()]
    await setState(s.t.pool, started!, 'sending', { sendStarted: true })
    // Read being sent before the batch; meanwhile its send succeeds, and the row is settled sent.
    const r = await whileBatchWaitsOn(b!, () => settledSent(started!))
    expect(r.body).toMatchObject({ items: [{ id: a }, { id: b }], more: true })
    expect((r.body as { leftSending?: string[] }).leftSending).toBeUndefined()
    expect(await statuses([started!])).toEqual(['sent'])
  })

  test('a row pending as the call began whose send starts as its batch reads it is named: the batch holds it in flight to the end of the call', async () => {
    const [a, r, b] = [await enqueued(), await enqueued(), await enqueued()]
    // A worker claims r and starts its send, not yet committed as the call reads the rows in
    // flight and its batch reads r pending; another transaction holds b.
    const worker = await holding(
      r!,
      `update mailer.email_outbox set status = 'sending', lease_owner = 'w1',
         lease_token = gen_random_uuid(), lease_expires_at = now() + interval '1 minute',
         attempts = attempts + 1, send_started_at = now() where id = $1`,
    )
    const other = await holding(b!)
    try {
      const call = send(s.app, 'POST', '/v1/outbox/cancel', {
        token: s.tk,
        body: { filter: FILTER, limit: 3 },
      })
      await cancelWaitsOn(worker.pid)
      // Its start committed, the batch's lock finds r started and leaves it, locked: a settle
      // (which skips a row another transaction holds) cannot bring it back to pending before the
      // call ends, so the call's last read finds it in flight.
      await worker.end()
      await cancelWaitsOn(other.pid)
      const settle = await s.t.pool.query(
        'select 1 from mailer.email_outbox where id = $1 for update skip locked',
        [r],
      )
      expect(settle.rowCount).toBe(0)
      await other.end()
      const answer = await call
      expect(answer.body).toMatchObject({ items: [{ id: a }, { id: b }] })
      expect((answer.body as { leftSending?: string[] }).leftSending).toEqual([r!])
    } finally {
      await worker.end()
      await other.end()
    }
  })

  test('a call that passed more rows being sent than its limit names the lowest and says there are more', async () => {
    const a = await enqueued()
    const flying = [await enqueued(), await enqueued(), await enqueued()]
    const b = await enqueued()
    for (const id of flying) await setState(s.t.pool, id!, 'sending', { sendStarted: true })
    const r = await send(s.app, 'POST', '/v1/outbox/cancel', {
      token: s.tk,
      body: { filter: FILTER, limit: 2 },
    })
    expect(r.body).toMatchObject({ items: [{ id: a }, { id: b }], more: true })
    const { leftSending, leftSendingMore } = r.body as {
      leftSending?: string[]
      leftSendingMore?: boolean
    }
    expect({ leftSending, leftSendingMore }).toEqual({
      leftSending: flying.slice(0, 2) as string[],
      leftSendingMore: true,
    })
    // As many as its limit: all named, nothing more to say.
    await s.t.pool.query(
      `update mailer.email_outbox set status = 'sent', lease_owner = null, lease_token = null,
         lease_expires_at = null, sent_at = now() where id = $1`,
      [flying[2]],
    )
    const [c, d] = [await enqueued(), await enqueued()]
    for (const id of [c, d]) await setState(s.t.pool, id!, 'sending', { sendStarted: true })
    const e = await enqueued()
    const next = await send(s.app, 'POST', '/v1/outbox/cancel', {
      token: s.tk,
      body: { filter: { ...FILTER, ids: [c, d, e] }, limit: 2 },
    })
    expect(next.body).toMatchObject({ items: [{ id: e }], more: false, leftSending: [c, d] })
    expect(next.body).not.toHaveProperty('leftSendingMore')
  })

  test('a call that read more rows being sent than its limit, most of them sent by its end, names those left and says no more', async () => {
    const { a, flying, b } = await fourInFlight()
    // Four in flight as the call begins (its limit 2); two succeed while its batch waits on a, one
    // of them past the lowest three.
    const r = await whileBatchWaitsOn(a, async () => {
      for (const id of flying.slice(2)) await settledSent(id)
    })
    expect(leftOf(r.body)).toEqual([[a, b], true, flying.slice(0, 2), false])
  })

  test('a call that read more rows being sent than its limit says there are more when one past the lowest three failed by its end', async () => {
    const { a, flying, b } = await fourInFlight()
    // The lowest succeeds and the highest fails, pending again, while the batch waits on a: three
    // left, two named.
    const r = await whileBatchWaitsOn(a, async () => {
      await settledSent(flying[0]!)
      await backToPending(flying[3]!)
    })
    expect(leftOf(r.body)).toEqual([[a, b], true, flying.slice(1, 3), true])
  })

  test('a loop without cursor while more rows than its limit are being sent acts on rows at each call, and ends', async () => {
    const rows = [] as string[]
    for (let i = 0; i < 8; i++) rows.push(await enqueued())
    // Every other row in flight, its send started: four, the loop's limit 2.
    const flying = rows.filter((_, i) => i % 2 === 0)
    const pending = rows.filter((_, i) => i % 2 === 1)
    for (const id of flying) await setState(s.t.pool, id, 'sending', { sendStarted: true })
    const calls: string[][] = []
    for (let more = true; more && calls.length < 10; ) {
      const r = await send(s.app, 'POST', '/v1/outbox/cancel', {
        token: s.tk,
        body: { filter: FILTER, limit: 2 },
      })
      const body = r.body as { items: { id: string }[]; more: boolean }
      calls.push(body.items.map((i) => i.id))
      more = body.more
    }
    expect(calls).toEqual([pending.slice(0, 2), pending.slice(2), []])
  })

  test('a dry run given the cursor counts what the rest of the loop would cancel', async () => {
    for (let i = 0; i < 4; i++) await enqueued()
    await enqueued('beta')
    const first = await send(s.app, 'POST', '/v1/outbox/cancel', {
      token: s.tk,
      body: { filter: FILTER, limit: 1 },
    })
    const { nextCursor, ...rest } = first.body as { nextCursor: string }
    expect(typeof nextCursor).toBe('string')
    expect(rest).toMatchObject({ matched: 1, more: true })
    // Enqueued after the loop began: not the loop's.
    await enqueued()
    const dry = await send(s.app, 'POST', '/v1/outbox/cancel', {
      token: s.tk,
      body: { filter: FILTER, dryRun: true, cursor: nextCursor },
    })
    expect(dry.body).toEqual({ dryRun: true, matched: 3, items: [], more: false })
    const all = await send(s.app, 'POST', '/v1/outbox/cancel', {
      token: s.tk,
      body: { filter: FILTER, dryRun: true },
    })
    expect((all.body as { matched: number }).matched).toBe(4)
  })

  test("a tenant's loop cancels its own rows only, whatever cursor it is given", async () => {
    const [acme1, beta1, beta2, acme2] = [
      await enqueued('acme'),
      await enqueued('beta'),
      await enqueued('beta'),
      await enqueued('acme'),
    ]
    const filter = { status: ['pending'] }
    const acmeTk = await token({ tenant: 'acme' })
    const acmeFirst = await send(s.app, 'POST', '/v1/outbox/cancel', {
      token: acmeTk,
      body: { filter, limit: 1 },
    })
    expect((acmeFirst.body as { items: unknown[] }).items).toEqual([
      { id: acme1, outcome: 'cancelled' },
    ])
    // Acme's cursor given with beta's token: beta's rows past its position, none of acme's.
    const { nextCursor } = acmeFirst.body as { nextCursor: string }
    const betaTk = await token({ tenant: 'beta' })
    expect(await cancelLoop({ tk: betaTk, filter, cursor: nextCursor, limit: 10 })).toEqual([
      [beta1, beta2],
    ])
    expect(await statuses([acme2!])).toEqual(['pending'])
  })
})

describe("a bulk cancel's cursor", () => {
  const refusal = async (action: 'cancel' | 'retry', cursor: unknown, extra: object = {}) => {
    const r = await send(s.app, 'POST', `/v1/outbox/${action}`, {
      token: s.tk,
      body: {
        filter: action === 'cancel' ? FILTER : { status: ['failed'] },
        cursor,
        ...extra,
      },
    })
    expect(r.status).toBe(400)
    expect(r.headers.get('content-type')).toContain('application/problem+json')
    return (r.body as { errors: { path: string; message: string }[] }).errors
  }
  const b64 = (text: string) => Buffer.from(text).toString('base64url')

  test('anything but a nextCursor a bulk cancel answered is a 400 naming cursor, nothing cancelled', async () => {
    const id = await enqueued()
    const notOurs = [
      {
        path: 'cursor',
        message:
          "is not a cursor this API returned: pass back a bulk cancel's nextCursor unchanged, or leave cursor out to begin a loop",
      },
    ]
    for (const bad of ['bogus', b64('c1:5'), b64('c1:9:5'), b64('c1:5:9:1'), `${b64('c1:5:9')}=`]) {
      expect({ bad, errors: await refusal('cancel', bad) }).toEqual({ bad, errors: notOurs })
      expect({ bad, errors: await refusal('cancel', bad, { dryRun: true }) }).toEqual({
        bad,
        errors: notOurs,
      })
    }
    expect(await refusal('cancel', b64('r1:5:9'))).toEqual([
      {
        path: 'cursor',
        message:
          "is a bulk retry's cursor (POST /v1/outbox/retry's nextCursor), not a bulk cancel's: pass back the nextCursor a bulk cancel answered, or leave cursor out to begin a loop",
      },
    ])
    expect(await refusal('cancel', encodeCursor('newest', '5'))).toEqual([
      {
        path: 'cursor',
        message:
          "is a list's cursor (GET /v1/outbox's nextCursor), not a bulk cancel's: pass back the nextCursor a bulk cancel answered, or leave cursor out to begin a loop",
      },
    ])
    expect((await refusal('cancel', ''))[0]?.path).toBe('cursor')
    expect((await refusal('cancel', null))[0]?.path).toBe('cursor')
    expect(await statuses([id])).toEqual(['pending'])
  })

  test("a bulk retry refuses a bulk cancel's cursor by name", async () => {
    expect(await refusal('retry', Buffer.from('c1:5:9').toString('base64url'))).toEqual([
      {
        path: 'cursor',
        message:
          "is a bulk cancel's cursor (POST /v1/outbox/cancel's nextCursor), not a bulk retry's: pass back the nextCursor a bulk retry answered, or leave cursor out to begin a loop",
      },
    ])
  })

  test('the document describes it and nextCursor for both actions', async () => {
    const doc = (await (await s.app.request('/openapi.json')).json()) as {
      components: {
        schemas: Record<string, { properties: Record<string, { description?: string }> }>
      }
    }
    const { BulkCancelRequest, BulkResult } = doc.components.schemas
    expect(BulkCancelRequest?.properties.cursor?.description).toContain('nextCursor')
    expect(BulkCancelRequest?.properties.cursor?.description).toContain(
      'none enqueued after its first call',
    )
    expect(BulkResult?.properties.nextCursor?.description).not.toContain('Bulk retry only')
  })
})
