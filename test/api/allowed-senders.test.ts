// The sender mailboxes a caller may name in message.from: MAIL_FROM_ALLOWED's list for every caller, a token's senders claim for its own.
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { useTestDb } from '../support/db.ts'
import { type App, appOnDefault, send } from './support/harness.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
const write = { scope: 'outbox:write' }
const mail = (from?: unknown) => ({
  message: {
    ...(from === undefined ? {} : { from }),
    to: 'ada@example.com',
    subject: 'Hi',
    text: 'x',
  },
})
const rows = async () =>
  (await t.pool.query<{ n: number }>('select count(*)::int as n from mailer.email_outbox')).rows[0]!
    .n
const problemOf = (r: { status: number; body: unknown }) => {
  const b = r.body as { type?: string; detail?: string }
  return [r.status, b.type, b.detail]
}

describe('MAIL_FROM_ALLOWED set', () => {
  let app: App
  beforeAll(() => {
    app = appOnDefault(t, { allowedSenders: new Set(['noreply@acme.example']) }).app
  })

  test('a tenant token naming another mailbox is refused 403 sender_not_allowed, and nothing is enqueued', async () => {
    const tenantToken = await token({ ...write, extra: { tenant: 'shop-a' } })
    for (const from of [
      'ceo@acme.example',
      'Boss <ceo@acme.example>',
      { address: 'ceo@acme.example', name: 'Boss' },
    ]) {
      const r = await send(app, 'POST', '/v1/outbox', { token: tenantToken, body: mail(from) })
      expect([from, ...problemOf(r)]).toEqual([
        from,
        403,
        'urn:outbox-mailer:problem:sender_not_allowed',
        'message.from names a mailbox MAIL_FROM_ALLOWED does not list',
      ])
    }
    expect(await rows()).toBe(0)
  })

  test('a listed mailbox, in any case or written "Name <address>", and no from at all (MAIL_FROM) are enqueued', async () => {
    const any = await token(write)
    for (const from of [
      'noreply@acme.example',
      'NoReply@ACME.example',
      'Acme <noreply@acme.example>',
      { address: 'noreply@acme.example', name: 'Acme' },
      undefined,
      null,
    ]) {
      const r = await send(app, 'POST', '/v1/outbox', { token: any, body: mail(from) })
      expect([from, r.status]).toEqual([from, 201])
    }
    expect(await rows()).toBe(6)
  })

  test('a from that is no address is left to enqueue_email, which names it (400), not called another mailbox', async () => {
    const r = await send(app, 'POST', '/v1/outbox', {
      token: await token(write),
      body: mail('not an address'),
    })
    expect(r.status).toBe(400)
    expect((r.body as { type: string }).type).toBe('urn:outbox-mailer:problem:validation_failed')
  })
})

describe('a token with a senders claim', () => {
  let app: App
  beforeAll(() => {
    app = appOnDefault(t).app
  })

  test('may name only the mailboxes it lists (any case), and none (MAIL_FROM); another is refused 403 sender_not_allowed', async () => {
    const shopA = await token({
      ...write,
      extra: { tenant: 'shop-a', senders: ['support@shop-a.example'] },
    })
    const refused = await send(app, 'POST', '/v1/outbox', {
      token: shopA,
      body: mail('ceo@acme.example'),
    })
    expect(problemOf(refused)).toEqual([
      403,
      'urn:outbox-mailer:problem:sender_not_allowed',
      "message.from names a mailbox the token's senders claim does not list",
    ])
    expect(await rows()).toBe(0)
    for (const from of ['Support@Shop-A.example', undefined]) {
      const r = await send(app, 'POST', '/v1/outbox', { token: shopA, body: mail(from) })
      expect([from, r.status]).toEqual([from, 201])
    }
    expect(await rows()).toBe(2)
  })

  test('no spelling of from gets another mailbox past the claim: whatever enqueue_email stores as the sender is a listed one', async () => {
    const shopA = await token({ ...write, extra: { senders: ['support@shop-a.example'] } })
    const spellings: unknown[] = [
      'support@shop-a.example <ceo@acme.example>',
      '"support@shop-a.example" <ceo@acme.example>',
      'Support <ceo@acme.example>, support@shop-a.example',
      ' ceo@acme.example ',
      '\tceo@acme.example',
      'ceo@acme.example\n',
      '<ceo@acme.example>',
      ' <ceo@acme.example> ',
      'Support <support@shop-a.example> <ceo@acme.example>',
      'Support <support@shop-a.example',
      // Blanks an earlier release's check did not read (0194).
      'Boss <ceo@acme.example>\u3000',
      '"Boss"\u00a0<ceo@acme.example>',
      'CEO@ACME.EXAMPLE',
      // Allowed, and stored as the listed mailbox:
      '"ceo@acme.example" <support@shop-a.example>',
      ' Support@Shop-A.example ',
      { address: 'support@shop-a.example', name: 'ceo@acme.example' },
      { address: ' ceo@acme.example ' },
      { address: 'ceo@acme.example', name: 'support@shop-a.example' },
      { name: 'x', address: 'support@shop-a.example', extra: 'ceo@acme.example' },
    ]
    let stored = 0
    for (const from of spellings) {
      const r = await send(app, 'POST', '/v1/outbox', { token: shopA, body: mail(from) })
      if (r.status !== 201) {
        expect([from, [400, 403].includes(r.status)]).toEqual([from, true])
        continue
      }
      const { rows: sender } = await t.pool.query<{ address: string }>(
        `select message->'from'->>'address' as address from mailer.email_outbox where id = $1`,
        [(r.body as { id: string }).id],
      )
      expect([from, sender[0]!.address.toLowerCase()]).toEqual([from, 'support@shop-a.example'])
      stored++
    }
    expect(stored).toBe(3)
  })

  test("a from with a blank other than ASCII's after its > or around its quoted name is refused 400 naming message.from, even a listed mailbox (0194)", async () => {
    const shopA = await token({ ...write, extra: { senders: ['support@shop-a.example'] } })
    for (const from of [
      'Support <support@shop-a.example>\u3000',
      '\ufeff"Support" <support@shop-a.example>',
    ]) {
      const r = await send(app, 'POST', '/v1/outbox', { token: shopA, body: mail(from) })
      expect([
        from,
        r.status,
        (r.body as { errors?: { path: string }[] }).errors?.[0]?.path,
      ]).toEqual([from, 400, 'message.from'])
    }
    // Between an unquoted name's words, and as a recipient, it is taken as before.
    for (const body of [
      mail('Support\u00a0Desk <support@shop-a.example>'),
      { message: { ...mail().message, to: 'Ada <ada@example.com>\u3000' } },
    ]) {
      const r = await send(app, 'POST', '/v1/outbox', { token: shopA, body })
      expect(r.status).toBe(201)
    }
    expect(await rows()).toBe(2)
  })

  /**
   * Failed rows of tenant shop-a, as SQL and settlements leave them: one from the token's own
   * mailbox, one naming none (MAIL_FROM), and three from elsewhere: a message's from, a template's
   * from_address, and a from_address only its rendering can say (a placeholder).
   */
  async function failedRows() {
    await t.pool.query(
      `insert into mailer.templates (name, subject, text_body, to_addresses, from_address)
       values ('ceo-note', 'Hi', 'x', '{"rcpt@example.com"}', 'Boss <ceo@acme.example>'),
              ('spoof', 'Hi', 'x', '{"rcpt@example.com"}', '{{sender}}')`,
    )
    const message = (from?: string) =>
      JSON.stringify({ ...(from ? { from } : {}), to: 'ada@example.com', subject: 'Hi', text: 'x' })
    const { rows: made } = await t.pool.query<{ id: string }>(
      `insert into mailer.email_outbox (tenant, message, template, source_row, status, attempts, last_error_code)
       select 'shop-a', m.message::jsonb, m.template, m.source_row::jsonb, 'failed', 1, 'throttled'
         from (values (1, $1, null, null), (2, $2, null, null), (3, $3, null, null),
                      (4, null, 'ceo-note', '{}'), (5, null, 'spoof', '{"sender": "ceo@acme.example"}'))
              as m(n, message, template, source_row)
        order by m.n
       returning id::text`,
      [message('Support@Shop-A.example'), message(), message('ceo@acme.example')],
    )
    const [own, mailFrom, ceo, ceoTemplate, placeholder] = made.map((r) => r.id)
    return { own: own!, mailFrom: mailFrom!, outside: [ceo!, ceoTemplate!, placeholder!] }
  }
  const statuses = async () =>
    Object.fromEntries(
      (
        await t.pool.query<{ id: string; status: string }>(
          'select id::text, status from mailer.email_outbox order by id',
        )
      ).rows.map((r) => [r.id, r.status]),
    )

  test("a retry by id of a row from a mailbox the claim does not list (its message's or its template's) is refused 403 sender_not_allowed and leaves it failed; its own mailbox's and MAIL_FROM's are requeued", async () => {
    const rows = await failedRows()
    const shopA = await token({
      ...write,
      extra: { tenant: 'shop-a', senders: ['support@shop-a.example'] },
    })
    const retry = (id: string) => send(app, 'POST', `/v1/outbox/${id}/retry`, { token: shopA })
    for (const id of rows.outside) {
      expect([id, ...problemOf(await retry(id))]).toEqual([
        id,
        403,
        'urn:outbox-mailer:problem:sender_not_allowed',
        `outbox row ${id} is sent from a mailbox the token's senders claim does not list (or only its rendering can say which): it may not retry it`,
      ])
    }
    expect((await retry(rows.own)).status).toBe(200)
    expect((await retry(rows.mailFrom)).status).toBe(200)
    expect(await statuses()).toEqual({
      [rows.own]: 'pending',
      [rows.mailFrom]: 'pending',
      ...Object.fromEntries(rows.outside.map((id) => [id, 'failed'])),
    })
  })

  test('a bulk retry requeues only the rows within the claim, and counts the ones it left (outsideSenders), the dry run too', async () => {
    const rows = await failedRows()
    const shopA = await token({ ...write, extra: { senders: ['support@shop-a.example'] } })
    const bulk = (dryRun: boolean) =>
      send(app, 'POST', '/v1/outbox/retry', {
        token: shopA,
        body: { filter: { status: ['failed'] }, dryRun },
      })
    const dry = await bulk(true)
    expect([dry.status, dry.body]).toEqual([
      200,
      { dryRun: true, matched: 2, outsideSenders: 3, items: [], more: false },
    ])
    const done = await bulk(false)
    expect([done.status, done.body]).toEqual([
      200,
      {
        dryRun: false,
        matched: 2,
        outsideSenders: 3,
        items: [
          { id: rows.own, outcome: 'requeued' },
          { id: rows.mailFrom, outcome: 'requeued' },
        ],
        more: false,
      },
    ])
    expect(await statuses()).toEqual({
      [rows.own]: 'pending',
      [rows.mailFrom]: 'pending',
      ...Object.fromEntries(rows.outside.map((id) => [id, 'failed'])),
    })
    // Without the claim nothing changes: the field is absent, every row is the token's to retry.
    const unconfined = await send(app, 'POST', '/v1/outbox/retry', {
      token: await token(write),
      body: { filter: { status: ['failed'] }, dryRun: true },
    })
    expect(unconfined.body).toEqual({ dryRun: true, matched: 3, items: [], more: false })
  })

  test('a claim that is not a list of e-mail addresses is a 401 naming the claim', async () => {
    for (const senders of ['support@shop-a.example', ['not an address'], [], [42]]) {
      const bad = await token({ ...write, extra: { senders } })
      const r = await send(app, 'POST', '/v1/outbox', { token: bad, body: mail() })
      expect([senders, r.status, (r.body as { detail: string }).detail]).toEqual([
        senders,
        401,
        'the senders claim must be a non-empty array of e-mail addresses',
      ])
    }
    expect(await rows()).toBe(0)
  })
})
