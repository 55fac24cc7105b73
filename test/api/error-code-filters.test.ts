// Listing and bulk actions by lastErrorCode and template: retry only what a fixed cause failed, cancel one template's batch.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { enqueueSql, send } from './support/harness.ts'
import { appOnOwnDatabase } from './support/own-database-app.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const s = appOnOwnDatabase()

/** A row failed with `code`, as a settlement leaves it. */
async function failedWith(code: string): Promise<string> {
  const id = await enqueueSql(s.t.pool)
  await s.t.pool.query(
    `update mailer.email_outbox set status = 'failed', attempts = 1, last_error_code = $2,
       last_error = 'failed: ' || $2 where id = $1`,
    [id, code],
  )
  return id
}

/** A pending row enqueued from `template`, as mailer.enqueue_from_row records it. */
async function pendingFrom(template: string | null): Promise<string> {
  if (template === null) return enqueueSql(s.t.pool)
  const r = await s.t.pool.query(
    `insert into mailer.email_outbox (template, source_row) values ($1, '{}') returning id::text`,
    [template],
  )
  return r.rows[0].id
}

const statusOf = async (id: string) =>
  (await s.t.pool.query('select status from mailer.email_outbox where id = $1', [id])).rows[0]
    .status

describe('lastErrorCode', () => {
  test('a bulk retry of the rows a fixed cause failed leaves the others failed', async () => {
    // The deploy guide's alerts say: after a refusal longer than THROTTLE_DEADLINE_SECONDS,
    // bulk-retry the rows that failed `throttled`. Held ambiguous sends and rejected recipients
    // must stay failed: retrying the first may send a mail twice, the second fails again.
    const throttled = [await failedWith('throttled'), await failedWith('throttled')]
    const held = await failedWith('ambiguous_send')
    const rejected = await failedWith('ErrorInvalidRecipients')
    const filter = { status: ['failed'], lastErrorCode: 'throttled' }
    const dry = await send(s.app, 'POST', '/v1/outbox/retry', {
      token: s.tk,
      body: { filter, dryRun: true },
    })
    expect(dry.status).toBe(200)
    expect(dry.body).toEqual({ dryRun: true, matched: 2, items: [], more: false })
    const real = await send(s.app, 'POST', '/v1/outbox/retry', { token: s.tk, body: { filter } })
    expect(real.body).toEqual({
      dryRun: false,
      matched: 2,
      items: throttled.map((id) => ({ id, outcome: 'requeued' })),
      more: false,
    })
    expect([await statusOf(held), await statusOf(rejected)]).toEqual(['failed', 'failed'])
  })

  test('the list filters by it: which rows wait, and why', async () => {
    await failedWith('throttled')
    const rejected = await failedWith('ErrorInvalidRecipients')
    const r = await send(
      s.app,
      'GET',
      '/v1/outbox?status=failed&lastErrorCode=ErrorInvalidRecipients',
      {
        token: s.tk,
      },
    )
    expect(r.status).toBe(200)
    expect((r.body as { items: { id: string }[] }).items.map((i) => i.id)).toEqual([rejected])
  })
})

describe('template', () => {
  test("a bulk cancel of one template's batch leaves other mail pending", async () => {
    const wrong = [await pendingFrom('newsletter'), await pendingFrom('newsletter')]
    const other = await pendingFrom('inquiry')
    const direct = await pendingFrom(null)
    const body = { filter: { template: 'newsletter' } }
    const dry = await send(s.app, 'POST', '/v1/outbox/cancel', {
      token: s.tk,
      body: { ...body, dryRun: true },
    })
    expect(dry.status).toBe(200)
    expect((dry.body as { matched: number }).matched).toBe(2)
    const real = await send(s.app, 'POST', '/v1/outbox/cancel', { token: s.tk, body })
    expect((real.body as { items: unknown[] }).items).toEqual(
      wrong.map((id) => ({ id, outcome: 'cancelled' })),
    )
    expect([await statusOf(other), await statusOf(direct)]).toEqual(['pending', 'pending'])
  })

  test('a template name longer than any template may have (a row inserted by hand) is found: the filter has no bound the column lacks', async () => {
    // mailer.templates.name is 1-100 characters (templates_name_check), but email_outbox.template
    // has no check: a row inserted by hand may name a longer one (it fails template_not_found at
    // send) and is still listed, cancelled or retried by it, unlike a tenant past 200 characters.
    const long = `legacy.${'x'.repeat(150)}`
    const mine = await pendingFrom(long)
    await pendingFrom('newsletter')
    const r = await send(s.app, 'GET', `/v1/outbox?template=${long}`, { token: s.tk })
    expect([r.status, (r.body as { items: { id: string }[] }).items.map((i) => i.id)]).toEqual([
      200,
      [mine],
    ])
    const dry = await send(s.app, 'POST', '/v1/outbox/cancel', {
      token: s.tk,
      body: { filter: { template: long }, dryRun: true },
    })
    expect([dry.status, (dry.body as { matched: number }).matched]).toEqual([200, 1])
  })

  test('the list filters by it', async () => {
    const mine = await pendingFrom('newsletter')
    await pendingFrom('inquiry')
    const r = await send(s.app, 'GET', '/v1/outbox?template=newsletter', { token: s.tk })
    expect(r.status).toBe(200)
    expect((r.body as { items: { id: string }[] }).items.map((i) => i.id)).toEqual([mine])
  })
})
