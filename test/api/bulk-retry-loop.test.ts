// A bulk retry looped while `more`: each row requeued once per loop, the loop bounded by its start, its cursor checked.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { encodeCursor } from '../../src/api/cursor.ts'
import { type BulkLoopOptions, bulkLoop, bulkLoopAnswers, leftOf } from './support/bulk-loop.ts'
import { enqueueSql, send, setState } from './support/harness.ts'
import { batchWaitsOn, holding } from './support/held-row-lock.ts'
import { appOnOwnDatabase } from './support/own-database-app.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const s = appOnOwnDatabase()
const FILTER = { status: ['failed'], lastErrorCode: 'throttled' }

/** A row of `tenant` failed with `code`, as a settlement leaves it. */
async function failedWith(code: string, tenant = 'default'): Promise<string> {
  const id = await enqueueSql(s.t.pool, { tenant })
  await failAgain([id], code)
  return id
}

/** The rows fail (again) with `code`, as a worker's settlement of their next attempt leaves them. */
async function failAgain(ids: string[], code = 'throttled') {
  await s.t.pool.query(
    `update mailer.email_outbox set status = 'failed', attempts = 1, last_error_code = $2,
       last_error = 'failed: ' || $2 where id = any($1::bigint[])`,
    [ids, code],
  )
}

/** An operator's retry loop (bulkLoop) over FILTER with limit 2 and the full token unless told otherwise. */
const retryLoop = (o: Partial<BulkLoopOptions> = {}) =>
  bulkLoop(s.app, 'retry', { tk: s.tk, filter: FILTER, ...o })

/**
 * A retry call over `{"status": ["failed"]}`, limit 2, whose batch waits on `held`'s lock (another
 * transaction holds it) while `meanwhile` runs; its answer once the lock is let go.
 */
async function whileBatchWaitsOn(held: string, meanwhile: () => Promise<void>) {
  const holder = await holding(s.t.pool, held)
  try {
    const call = send(s.app, 'POST', '/v1/outbox/retry', {
      token: s.tk,
      body: { filter: { status: ['failed'] }, limit: 2 },
    })
    await batchWaitsOn(s.t.pool, 'requeued', holder.pid)
    await meanwhile()
    await holder.end()
    return await call
  } finally {
    await holder.end()
  }
}

describe('a bulk retry loop', () => {
  test('a row that fails again while the loop runs is requeued once, not by a later call', async () => {
    const [a, b, c] = [
      await failedWith('throttled'),
      await failedWith('throttled'),
      await failedWith('throttled'),
    ]
    // The first call requeues a and b; a's next attempt fails the same way before the second call.
    let first = true
    const calls = await retryLoop({
      between: async (requeued) => {
        if (first) await failAgain(requeued.slice(0, 1))
        first = false
      },
    })
    expect(calls).toEqual([[a, b], [c]])
    expect(
      (await s.t.pool.query('select status from mailer.email_outbox where id = $1', [a])).rows[0]
        .status,
    ).toBe('failed')
  })

  test('a loop over a code that keeps recurring ends, each row requeued once', async () => {
    const ids = [
      await failedWith('throttled'),
      await failedWith('throttled'),
      await failedWith('throttled'),
    ]
    // Every row a call requeues fails again with the same code before the next call.
    const calls = await retryLoop({ between: (requeued) => failAgain(requeued) })
    expect(calls).toEqual([ids.slice(0, 2), ids.slice(2)])
  })
})

describe("a bulk retry loop's bound", () => {
  test('rows enqueued after its first call are left; a row past its position failing meanwhile is taken once', async () => {
    const [a, b] = [await failedWith('throttled'), await failedWith('throttled')]
    // Pending as the loop begins, past the first call's batch: its first failure comes mid-loop.
    const later = await enqueueSql(s.t.pool)
    let enqueued = ''
    const calls = await retryLoop({
      limit: 1,
      between: async (requeued) => {
        if (requeued[0] !== a) return
        await failAgain([later])
        enqueued = await failedWith('throttled')
      },
    })
    expect(calls).toEqual([[a], [b], [later], []])
    const { rows } = await s.t.pool.query(
      'select id::text, status from mailer.email_outbox where id = $1',
      [enqueued],
    )
    expect(rows).toEqual([{ id: enqueued, status: 'failed' }])
    // The next loop takes it.
    expect(await retryLoop()).toEqual([[enqueued]])
  })

  test('a dry run given the cursor counts what the rest of the loop would requeue', async () => {
    const ids = [
      await failedWith('throttled'),
      await failedWith('throttled'),
      await failedWith('throttled'),
      await failedWith('ErrorInvalidRecipients'),
    ]
    const first = await send(s.app, 'POST', '/v1/outbox/retry', {
      token: s.tk,
      body: { filter: FILTER, limit: 1 },
    })
    const { nextCursor } = first.body as { nextCursor: string }
    // The row requeued fails again, and one is enqueued and fails: neither is the loop's any more.
    await failAgain([ids[0]!])
    await failedWith('throttled')
    const dry = await send(s.app, 'POST', '/v1/outbox/retry', {
      token: s.tk,
      body: { filter: FILTER, dryRun: true, cursor: nextCursor },
    })
    expect(dry.body).toEqual({ dryRun: true, matched: 2, items: [], more: false })
    const all = await send(s.app, 'POST', '/v1/outbox/retry', {
      token: s.tk,
      body: { filter: FILTER, dryRun: true },
    })
    expect((all.body as { matched: number }).matched).toBe(4)
  })

  test("a tenant's loop requeues its own rows only, whatever cursor it is given", async () => {
    const [acme1, beta1, beta2, acme2] = [
      await failedWith('throttled', 'acme'),
      await failedWith('throttled', 'beta'),
      await failedWith('throttled', 'beta'),
      await failedWith('throttled', 'acme'),
    ]
    const acmeTk = await token({ tenant: 'acme' })
    expect(await retryLoop({ tk: acmeTk, limit: 1 })).toEqual([[acme1], [acme2], []])
    // Acme's rows fail again; a loop of acme's begins, and its cursor is given with beta's token:
    // beta's rows past its position, none of acme's.
    await failAgain([acme1!, acme2!])
    const acmeFirst = await send(s.app, 'POST', '/v1/outbox/retry', {
      token: acmeTk,
      body: { filter: FILTER, limit: 1 },
    })
    expect((acmeFirst.body as { items: unknown[] }).items).toEqual([
      { id: acme1, outcome: 'requeued' },
    ])
    const { nextCursor } = acmeFirst.body as { nextCursor: string }
    const betaTk = await token({ tenant: 'beta' })
    expect(await retryLoop({ tk: betaTk, cursor: nextCursor, limit: 10 })).toEqual([[beta1, beta2]])
    const { rows } = await s.t.pool.query('select status from mailer.email_outbox where id = $1', [
      acme2,
    ])
    expect(rows).toEqual([{ status: 'failed' }])
  })

  test('a row being sent as a call passed it is named in its leftSending: the loop leaves it failed again, a retry by those ids takes it', async () => {
    const [a, b] = [await failedWith('throttled'), await failedWith('throttled')]
    // Throttled before, its next attempt under way as the loop passes it (held so by the test).
    const inFlight = await failedWith('throttled')
    await setState(s.t.pool, inFlight, 'sending', { sendStarted: true })
    const c = await failedWith('throttled')
    const answers = await bulkLoopAnswers(s.app, 'retry', { tk: s.tk, filter: FILTER })
    // The last call passed it (up to the loop's bound): named there.
    expect(answers).toEqual([{ items: [a, b] }, { items: [c], leftSending: [inFlight] }])
    // It fails the same way again: the loop has ended; a retry by the ids it named takes it.
    await s.t.pool.query(
      `update mailer.email_outbox set status = 'failed', lease_owner = null, lease_token = null,
         lease_expires_at = null, send_started_at = null, last_error_code = 'throttled'
       where id = $1`,
      [inFlight],
    )
    const after = await send(s.app, 'POST', '/v1/outbox/retry', {
      token: s.tk,
      body: { filter: { ids: [inFlight] } },
    })
    expect(after.body).toMatchObject({ matched: 1, items: [{ id: inFlight, outcome: 'requeued' }] })
    // A token confined to senders is told of its own mailboxes' rows only.
    await setState(s.t.pool, inFlight, 'sending', { sendStarted: true })
    const confined = await send(s.app, 'POST', '/v1/outbox/retry', {
      token: await token({ extra: { senders: ['support@shop-a.example'] } }),
      body: { filter: FILTER },
    })
    expect(confined.body).toMatchObject({ leftSending: [inFlight] })
    await s.t.pool.query(
      `update mailer.email_outbox set message = message || '{"from": "ceo@acme.example"}' where id = $1`,
      [inFlight],
    )
    const outside = await send(s.app, 'POST', '/v1/outbox/retry', {
      token: await token({ extra: { senders: ['support@shop-a.example'] } }),
      body: { filter: FILTER },
    })
    expect(outside.body).not.toHaveProperty('leftSending')
  })

  test('of the rows read being sent before its batch, a call names those failed again by its end, not one cancelled that its filter leaves', async () => {
    const a = await failedWith('throttled')
    const [cancelledMeanwhile, failedMeanwhile] = [
      await failedWith('throttled'),
      await failedWith('throttled'),
    ]
    for (const id of [cancelledMeanwhile, failedMeanwhile])
      await setState(s.t.pool, id, 'sending', { sendStarted: true })
    const b = await failedWith('throttled')
    // Another transaction holds b: the batch waits on it while the two sends end.
    const r = await whileBatchWaitsOn(b, async () => {
      await s.t.pool.query(
        `update mailer.email_outbox set status = case when id = $1 then 'cancelled' else 'failed' end,
           last_error_code = case when id = $1 then 'cancelled' else 'throttled' end,
           lease_owner = null, lease_token = null, lease_expires_at = null, send_started_at = null
         where id = any($2::bigint[])`,
        [cancelledMeanwhile, [cancelledMeanwhile, failedMeanwhile]],
      )
    })
    expect(r.body).toMatchObject({ items: [{ id: a }, { id: b }], more: true })
    // The filter retries failed rows alone: the cancelled one is nothing the loop left.
    expect((r.body as { leftSending?: string[] }).leftSending).toEqual([failedMeanwhile])
  })

  test('a call that read more rows being sent than its limit, two of them sent by its end, names the two left and says no more', async () => {
    const a = await failedWith('throttled')
    const flying = [] as string[]
    for (let i = 0; i < 4; i++) flying.push(await enqueueSql(s.t.pool))
    for (const id of flying) await setState(s.t.pool, id, 'sending', { sendStarted: true })
    const b = await failedWith('throttled')
    // Four in flight as the call begins (its limit 2). While its batch waits on b, the two highest
    // are sent (one past the lowest three) and the lowest fails again.
    const r = await whileBatchWaitsOn(b, async () => {
      await s.t.pool.query(
        `update mailer.email_outbox
            set status = case when id = $1 then 'failed' else 'sent' end,
                sent_at = case when id <> $1 then now() end,
                last_error_code = case when id = $1 then 'throttled' end,
                lease_owner = null, lease_token = null, lease_expires_at = null, send_started_at = null
          where id = any($2::bigint[])`,
        [flying[0], [flying[0], ...flying.slice(2)]],
      )
    })
    expect(leftOf(r.body)).toEqual([[a, b], true, flying.slice(0, 2), false])
  })

  test("a senders-confined token's outsideSenders counts the rows the rest of its loop passes, and shrinks as it goes", async () => {
    const from = (address: string) => ({
      from: address,
      to: 'ada@example.com',
      subject: 'Hi',
      text: 'x',
    })
    /** A failed row sent from `address`: the claim's own mailbox, or one it does not list. */
    const failedFrom = async (address: string) => {
      const id = await enqueueSql(s.t.pool, {}, from(address))
      await failAgain([id])
      return id
    }
    const [own, other] = ['support@shop-a.example', 'ceo@acme.example']
    const ids = [
      await failedFrom(other),
      await failedFrom(own),
      await failedFrom(other),
      await failedFrom(own),
      await failedFrom(other),
      await failedFrom(own),
    ]
    const shopA = await token({ extra: { senders: [own] } })
    const call = (o: { cursor?: string; dryRun?: boolean }) =>
      send(s.app, 'POST', '/v1/outbox/retry', {
        token: shopA,
        body: { filter: FILTER, limit: 1, ...o },
      }).then(
        (r) => r.body as { items: { id: string }[]; outsideSenders: number; nextCursor?: string },
      )
    const answers: [string[], number, number | null][] = []
    let cursor: string | undefined
    for (let more = true; more && answers.length < 10; ) {
      // What the dry run given the same cursor counts: the same bounds as the call's.
      const dry =
        cursor === undefined ? null : (await call({ cursor, dryRun: true })).outsideSenders
      const r = await call(cursor === undefined ? {} : { cursor })
      answers.push([r.items.map((i) => i.id), r.outsideSenders, dry])
      // A row outside the claim enqueued after the loop began is none of its rows.
      if (answers.length === 1) await failedFrom(other)
      more = r.nextCursor !== undefined
      cursor = r.nextCursor
    }
    expect(answers).toEqual([
      [[ids[1]!], 3, null],
      [[ids[3]!], 2, 2],
      [[ids[5]!], 1, 1],
      [[], 0, 0],
    ])
  })
})

describe("a bulk retry's cursor", () => {
  const refusal = async (cursor: unknown, extra: object = {}) => {
    const r = await send(s.app, 'POST', '/v1/outbox/retry', {
      token: s.tk,
      body: { filter: FILTER, cursor, ...extra },
    })
    expect(r.status).toBe(400)
    expect(r.headers.get('content-type')).toContain('application/problem+json')
    return (r.body as { errors: { path: string; message: string }[] }).errors
  }
  const NOT_OURS =
    "is not a cursor this API returned: pass back a bulk retry's nextCursor unchanged, or leave cursor out to begin a loop"
  const b64 = (text: string) => Buffer.from(text).toString('base64url')

  test('anything but a nextCursor a bulk retry answered is a 400 naming cursor, nothing requeued', async () => {
    const id = await failedWith('throttled')
    for (const bad of [
      'bogus',
      b64('r1:5'),
      b64('r1:9:5'),
      b64('r1:0:5'),
      b64('r1:5:9:1'),
      b64('r1:5:99999999999999999999'),
      `${b64('r1:5:9')}=`,
    ]) {
      expect({ bad, errors: await refusal(bad) }).toEqual({
        bad,
        errors: [{ path: 'cursor', message: NOT_OURS }],
      })
      expect({ bad, errors: await refusal(bad, { dryRun: true }) }).toEqual({
        bad,
        errors: [{ path: 'cursor', message: NOT_OURS }],
      })
    }
    expect(await refusal(encodeCursor('newest', '5'))).toEqual([
      {
        path: 'cursor',
        message:
          "is a list's cursor (GET /v1/outbox's nextCursor), not a bulk retry's: pass back the nextCursor a bulk retry answered, or leave cursor out to begin a loop",
      },
    ])
    expect((await refusal(''))[0]?.path).toBe('cursor')
    expect((await refusal(7))[0]?.path).toBe('cursor')
    expect((await refusal(null))[0]?.path).toBe('cursor')
    const { rows } = await s.t.pool.query('select status from mailer.email_outbox where id = $1', [
      id,
    ])
    expect(rows).toEqual([{ status: 'failed' }])
  })

  test('inside the filter it is no criterion', async () => {
    const inFilter = await send(s.app, 'POST', '/v1/outbox/retry', {
      token: s.tk,
      body: { filter: { ...FILTER, cursor: 'x' } },
    })
    expect(inFilter.status).toBe(400)
    expect((inFilter.body as { errors: { path: string }[] }).errors[0]?.path).toBe('filter.cursor')
  })

  test('the document describes it and nextCursor', async () => {
    const doc = (await (await s.app.request('/openapi.json')).json()) as {
      components: {
        schemas: Record<string, { properties: Record<string, { description?: string }> }>
      }
    }
    const { BulkRetryRequest, BulkResult } = doc.components.schemas
    expect(BulkRetryRequest?.properties.cursor?.description).toContain('nextCursor')
    expect(BulkRetryRequest?.properties.cursor?.description).toContain('fails again is left')
    expect(BulkResult?.properties.nextCursor?.description).toContain('`cursor`')
    expect(BulkResult?.properties.outsideSenders?.description).toContain(
      'the rest of the loop the call bounds',
    )
  })
})
