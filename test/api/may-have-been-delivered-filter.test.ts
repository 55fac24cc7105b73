// The bulk filter's mayHaveBeenDelivered: a retry (or cancel) by code that leaves out the rows a send may have delivered, in one call.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { enqueueSql, send, setState } from './support/harness.ts'
import { appOnOwnDatabase } from './support/own-database-app.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const s = appOnOwnDatabase()

const HELD = 'an earlier interrupted send may have delivered it; held for review (retry it to send)'

/**
 * A row as the settlements leave it: `code` its last error, `marked` keeping an interrupted send's
 * mark (send_started_at, settle.ts), `held` with a hold for review in its history (ambiguous_send,
 * which clears the mark: earlier-interrupted.ts).
 */
async function rowIn(
  status: 'failed' | 'cancelled' | 'pending' | 'sent',
  code: string | null,
  o: { marked?: boolean; held?: boolean; lastError?: string } = {},
): Promise<string> {
  const id = await enqueueSql(s.t.pool)
  await s.t.pool.query(
    `update mailer.email_outbox set status = $2, attempts = 1, last_error_code = $3,
       last_error = $4, sent_at = case when $2 = 'sent' then now() end,
       send_started_at = case when $5 then now() - interval '1 hour' end where id = $1`,
    [
      id,
      status,
      code,
      o.lastError ?? (code === null ? null : `failed: ${code}`),
      o.marked === true,
    ],
  )
  if (o.held) {
    await s.t.pool.query(
      `insert into mailer.email_attempts (outbox_id, attempt, outcome, error_code, error, kind)
       values ($1, 1, 'failed', 'ambiguous_send', $2, 'unresolved')`,
      [id, HELD],
    )
  }
  return id
}

const statusOf = async (id: string) =>
  (await s.t.pool.query('select status from mailer.email_outbox where id = $1', [id])).rows[0]
    .status

/** The runbooks' mix: rows failed `throttled`, some of which a send may have delivered, and others. */
async function throttledMix() {
  const plain = [await rowIn('failed', 'throttled'), await rowIn('failed', 'throttled')]
  const marked = await rowIn('failed', 'throttled', {
    marked: true,
    lastError:
      'throttled past THROTTLE_DEADLINE_SECONDS; an interrupted send may have delivered it',
  })
  // Held ambiguous_send, retried (its mark cleared by the hold), then failed throttled.
  const heldThenRetried = await rowIn('failed', 'throttled', {
    held: true,
    lastError:
      'throttled past THROTTLE_DEADLINE_SECONDS (an earlier interrupted send may have delivered it)',
  })
  const held = await rowIn('failed', 'ambiguous_send', { held: true, lastError: HELD })
  const cancelled = await rowIn('cancelled', 'throttled')
  const sent = await rowIn('sent', null)
  return { plain, marked, heldThenRetried, held, cancelled, sent }
}

describe('mayHaveBeenDelivered in a bulk filter', () => {
  test('false: a retry by code takes the rows no send may have delivered, a dry run counting them', async () => {
    const m = await throttledMix()
    const filter = { status: ['failed'], lastErrorCode: 'throttled', mayHaveBeenDelivered: false }
    const dry = await send(s.app, 'POST', '/v1/outbox/retry', {
      token: s.tk,
      body: { filter, dryRun: true },
    })
    expect([dry.status, dry.body]).toEqual([
      200,
      { dryRun: true, matched: 2, items: [], more: false },
    ])
    const real = await send(s.app, 'POST', '/v1/outbox/retry', { token: s.tk, body: { filter } })
    expect([real.status, real.body]).toEqual([
      200,
      {
        dryRun: false,
        matched: 2,
        items: m.plain.map((id) => ({ id, outcome: 'requeued' })),
        more: false,
      },
    ])
    expect(
      await Promise.all([m.marked, m.heldThenRetried, m.held, m.cancelled, m.sent].map(statusOf)),
    ).toEqual(['failed', 'failed', 'failed', 'cancelled', 'sent'])
  })

  test('false without a code: every failed and cancelled row no send may have delivered, by the plain read and by the code read', async () => {
    const m = await throttledMix()
    const rejected = await rowIn('failed', 'ErrorInvalidRecipients')
    const byStatus = await send(s.app, 'POST', '/v1/outbox/retry', {
      token: s.tk,
      body: {
        filter: { status: ['failed', 'cancelled'], mayHaveBeenDelivered: false },
        dryRun: true,
      },
    })
    expect((byStatus.body as { matched: number }).matched).toBe(4)
    // A tenant's rows are found by 0085's index rather than the code's (codeFirst): the same rows.
    const real = await send(s.app, 'POST', '/v1/outbox/retry', {
      token: s.tk,
      body: { filter: { tenant: 'default', mayHaveBeenDelivered: false } },
    })
    expect((real.body as { items: { id: string }[] }).items.map((i) => i.id)).toEqual(
      [...m.plain, m.cancelled, rejected].sort((a, b) => Number(a) - Number(b)),
    )
  })

  test('by status alone, a loop of small batches takes the same rows, lowest first, as the check runs after the order', async () => {
    const m = await throttledMix()
    const rejected = await rowIn('failed', 'ErrorInvalidRecipients')
    /** A retry loop of `limit` rows a call, its batches' ids. */
    const loop = async (mayHaveBeenDelivered: boolean) => {
      const batches: string[][] = []
      let cursor: string | undefined
      do {
        const r = await send(s.app, 'POST', '/v1/outbox/retry', {
          token: s.tk,
          body: {
            filter: { status: ['failed', 'cancelled'], mayHaveBeenDelivered },
            limit: 2,
            ...(cursor && { cursor }),
          },
        })
        expect(r.status).toBe(200)
        const body = r.body as { items: { id: string }[]; more: boolean; nextCursor?: string }
        batches.push(body.items.map((i) => i.id))
        cursor = body.more ? body.nextCursor : undefined
      } while (cursor)
      return batches
    }
    const byId = (ids: string[]) => [...ids].sort((a, b) => Number(a) - Number(b))
    const none = byId([...m.plain, m.cancelled, rejected])
    expect(await loop(false)).toEqual([none.slice(0, 2), none.slice(2, 4), []])
    const may = byId([m.marked, m.heldThenRetried, m.held])
    expect(await loop(true)).toEqual([may.slice(0, 2), may.slice(2)])
  })

  test('true: the rows a send may have delivered, the ones to look for in Sent Items first', async () => {
    const m = await throttledMix()
    const dry = await send(s.app, 'POST', '/v1/outbox/retry', {
      token: s.tk,
      body: { filter: { status: ['failed'], mayHaveBeenDelivered: true }, dryRun: true },
    })
    expect([dry.status, (dry.body as { matched: number }).matched]).toEqual([200, 3])
    const real = await send(s.app, 'POST', '/v1/outbox/retry', {
      token: s.tk,
      body: { filter: { lastErrorCode: 'throttled', mayHaveBeenDelivered: true } },
    })
    expect((real.body as { items: { id: string }[] }).items.map((i) => i.id)).toEqual([
      m.marked,
      m.heldThenRetried,
    ])
  })

  test("a bulk cancel with false leaves a pending row keeping an interrupted send's mark", async () => {
    const plain = await rowIn('pending', null)
    const waiting = await rowIn('pending', 'mailbox_paused')
    const marked = await rowIn('pending', 'lease_expired', { marked: true })
    const heldThenRetried = await rowIn('pending', 'ambiguous_send', {
      held: true,
      lastError: HELD,
    })
    const r = await send(s.app, 'POST', '/v1/outbox/cancel', {
      token: s.tk,
      body: { filter: { status: ['pending'], mayHaveBeenDelivered: false } },
    })
    expect([r.status, (r.body as { items: unknown[] }).items]).toEqual([
      200,
      [plain, waiting].map((id) => ({ id, outcome: 'cancelled' })),
    ])
    expect(await Promise.all([marked, heldThenRetried].map(statusOf))).toEqual([
      'pending',
      'pending',
    ])
  })

  test('false: a row passed while its send was in flight is named in leftSending, as its send may end for sure', async () => {
    // A send in flight marks its row; failed for sure, the row is unmarked and matches behind the
    // loop's position, which would leave it unnamed.
    const inFlight = await enqueueSql(s.t.pool)
    await setState(s.t.pool, inFlight, 'sending', { sendStarted: true })
    const plain = await rowIn('pending', null)
    const r = await send(s.app, 'POST', '/v1/outbox/cancel', {
      token: s.tk,
      body: { filter: { status: ['pending'], mayHaveBeenDelivered: false } },
    })
    expect([r.status, r.body]).toMatchObject([
      200,
      { items: [{ id: plain, outcome: 'cancelled' }], leftSending: [inFlight] },
    ])
  })

  test('a value not true or false is a 400 naming it, nothing retried', async () => {
    const plain = await rowIn('failed', 'throttled')
    for (const value of ['false', 0, null, 'no']) {
      const r = await send(s.app, 'POST', '/v1/outbox/retry', {
        token: s.tk,
        body: { filter: { lastErrorCode: 'throttled', mayHaveBeenDelivered: value } },
      })
      expect([
        value,
        r.status,
        r.headers.get('content-type'),
        (r.body as { errors?: unknown }).errors,
      ]).toEqual([
        value,
        400,
        'application/problem+json',
        [
          {
            path: 'filter.mayHaveBeenDelivered',
            message: expect.stringMatching(/^must be true or false, not /),
          },
        ],
      ])
    }
    expect(await statusOf(plain)).toBe('failed')
  })

  test('the list takes it too: the rows to retry, and the rows to look for in Sent Items first', async () => {
    const m = await throttledMix()
    const ids = async (query: string) => {
      const r = await send(s.app, 'GET', `/v1/outbox?order=oldest&${query}`, { token: s.tk })
      return [r.status, (r.body as { items?: { id: string }[] }).items?.map((i) => i.id)]
    }
    expect(await ids('status=failed&lastErrorCode=throttled&mayHaveBeenDelivered=false')).toEqual([
      200,
      m.plain,
    ])
    expect(await ids('status=failed&mayHaveBeenDelivered=true')).toEqual([
      200,
      [m.marked, m.heldThenRetried, m.held],
    ])
    expect(await ids('mayHaveBeenDelivered=true')).toEqual([
      200,
      [m.marked, m.heldThenRetried, m.held, m.sent],
    ])
    const bad = await send(s.app, 'GET', '/v1/outbox?mayHaveBeenDelivered=yes', { token: s.tk })
    expect([bad.status, (bad.body as { errors?: unknown }).errors]).toEqual([
      400,
      [{ path: 'mayHaveBeenDelivered', message: 'must be true or false' }],
    ])
  })

  test("a row's GET says whether a send may have delivered it, as the filter reads it", async () => {
    const m = await throttledMix()
    const pending = await rowIn('pending', null)
    const said = async (id: string) => {
      const r = await send(s.app, 'GET', `/v1/outbox/${id}`, { token: s.tk })
      return [r.status, (r.body as { mayHaveBeenDelivered?: unknown }).mayHaveBeenDelivered]
    }
    const rows = [...m.plain, m.marked, m.heldThenRetried, m.held, m.cancelled, m.sent, pending]
    expect(await Promise.all(rows.map(said))).toEqual(
      [false, false, true, true, true, false, true, false].map((v) => [200, v]),
    )
  })
})
