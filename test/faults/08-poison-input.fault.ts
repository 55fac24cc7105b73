// Scenario 8: poison input (broken template, rejected recipient, oversized attachment, unknown template) amid good rows.
import { afterAll, expect, setDefaultTimeout } from 'bun:test'
import {
  allSent,
  cleanupAll,
  enqueue,
  FAST,
  MAILBOX,
  report,
  seconds,
  sharedDatabase,
  spawnMailer,
  startGraph,
  within,
} from './harness.ts'
import { test } from './kept-evidence.ts'
import { sendCounts } from './send-counts.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). CI's --timeout
// (.ci/run): the bound of the hooks (cleanupAll); each scenario passes its own.
setDefaultTimeout(180_000)
afterAll(cleanupAll)

const REJECTED = 'nobody@example.invalid'

test('each poison row ends in a clear terminal state or error while everything else is sent', async () => {
  const db = await sharedDatabase('poison')
  const graph = await startGraph({ rejectRecipients: [REJECTED] })
  await db.q(`
    create table public.inquiries (id serial primary key, name text not null, message text not null);
    create table public.orders (id serial primary key, total numeric not null);
    create table public.orphans (id serial primary key, note text);
    insert into mailer.templates (name, subject, text_body, to_addresses)
    values ('inquiry', 'Inquiry from {{name}}', '{{name}} wrote: {{message}}', array['sales@example.com']),
           ('order', 'Order {{id}}', 'Total {{total}} for {{customer_name}}', array['orders@example.com']);
    create trigger inquiries_mail after insert on public.inquiries
      for each row execute function mailer.enqueue_from_row('inquiry');
    create trigger orders_mail after insert on public.orders
      for each row execute function mailer.enqueue_from_row('order');
    create trigger orphans_mail after insert on public.orphans
      for each row execute function mailer.enqueue_from_row('no_such_template');`)
  const mailer = await spawnMailer('poison', { DATABASE_URL: db.url, ...graph.env, ...FAST })
  await mailer.waitReady()
  const t0 = performance.now()

  // An unknown template fails the application's own insert, loudly, and enqueues nothing.
  const orphan = await db.q('insert into public.orphans (note) values ($1)', ['x']).then(
    () => null,
    (e: { code?: string; message: string }) => e,
  )
  expect(orphan?.code).toBe('22023')
  expect(orphan?.message).toContain('unknown template "no_such_template"')
  expect((await db.q<{ n: number }>('select count(*)::int as n from public.orphans'))[0]!.n).toBe(0)
  // Bad input through the HTTP API is refused with a problem document, and enqueues nothing.
  const bad = await mailer.api('/v1/outbox', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ message: { subject: 'no recipient', text: 'x' } }),
  })
  expect(bad.status).toBeGreaterThanOrEqual(400)
  expect(bad.status).toBeLessThan(500)
  expect(bad.headers.get('content-type')).toContain('application/problem+json')

  const good: string[] = await enqueue(db, 100, { tag: 'good first' })
  // A template whose placeholder names no column of the source row.
  await db.q('insert into public.orders (total) values (42)')
  const rejected = await db.q<{ id: string }>(
    `select mailer.enqueue_email(jsonb_build_object('to', $1::text, 'subject', 'to nobody', 'text', 'x'))::text as id`,
    [REJECTED],
  )
  // 3.5 MB decoded: over sendMail's inline attachment limit. Enqueue refuses it (sql/0029), loudly;
  // a row inserted around it (or stored by an older release) fails at send, unsent.
  const big = Buffer.alloc(3_500_000, 7).toString('base64')
  const bigMessage = `jsonb_build_object('to', jsonb_build_array(jsonb_build_object('address', 'big@example.com')),
       'subject', 'big', 'text', 'x',
       'attachments', jsonb_build_array(jsonb_build_object('filename', 'big.bin', 'contentBase64', $1::text)))`
  const refusedBig = await db.q(`select mailer.enqueue_email(${bigMessage})`, [big]).then(
    () => null,
    (e: { code?: string; message: string }) => e,
  )
  expect(refusedBig?.code).toBe('22023')
  expect(refusedBig?.message).toContain('message.attachments must total at most 3145728 bytes')
  const oversized = await db.q<{ id: string }>(
    `insert into mailer.email_outbox (message) values (${bigMessage}) returning id::text as id`,
    [big],
  )
  await db.q(
    `insert into public.inquiries (name, message) select 'name ' || g, 'message ' || g from generate_series(1, 50) g`,
  )
  good.push(...(await enqueue(db, 100, { tag: 'good last' })))
  const templated = await db.q<{ id: string; template: string }>(
    `select id::text, template from mailer.email_outbox where template is not null order by id`,
  )
  good.push(...templated.filter((r) => r.template === 'inquiry').map((r) => r.id))
  const broken = templated.find((r) => r.template === 'order')!.id

  await allSent(db, good, 30_000, [mailer])
  const poison = { broken, rejected: rejected[0]!.id, oversized: oversized[0]!.id }
  const rows = await within('every poison row failed', 10_000, async () => {
    const out: Record<string, { status: string; lastErrorCode: string | null; attempts: number }> =
      {}
    for (const [k, id] of Object.entries(poison)) {
      const res = await mailer.api(`/v1/outbox/${id}`)
      expect(res.status).toBe(200)
      out[k] = (await res.json()) as (typeof out)[string]
      if (out[k]!.status !== 'failed') return undefined
    }
    return out
  })
  const drainMs = performance.now() - t0
  expect(rows.broken).toMatchObject({
    status: 'failed',
    lastErrorCode: 'template_error',
    attempts: 1,
  })
  // The binary's API renders a row as its worker did: the broken one fails with the same code and
  // text, a sent one of the other template shows what went (MAIL_FROM its sender).
  const brokenRow = rows.broken as unknown as Record<string, unknown>
  expect([brokenRow.rendered, brokenRow.renderError]).toEqual([
    null,
    { code: 'template_error', message: brokenRow.lastError },
  ])
  const inquiry = templated.find((r) => r.template === 'inquiry')!.id
  const sent = (await (await mailer.api(`/v1/outbox/${inquiry}`)).json()) as {
    rendered: { from: unknown; to: unknown; subject: string }
  }
  expect(sent.rendered).toMatchObject({
    from: { address: MAILBOX },
    to: [{ address: 'sales@example.com' }],
    subject: expect.stringMatching(/^Inquiry from name \d+$/),
  })
  expect(rows.rejected).toMatchObject({
    status: 'failed',
    lastErrorCode: 'ErrorInvalidRecipients',
    attempts: 1,
  })
  expect(rows.oversized).toMatchObject({
    status: 'failed',
    lastErrorCode: 'attachment_too_large',
    attempts: 1,
  })
  // Graph saw the good rows once each (bar resends of interrupted sends) and never the oversized
  // or broken ones.
  expect(graph.missing(good)).toEqual([])
  const sends = await sendCounts(db, graph)
  expect(sends.doubleSends).toEqual([])
  const seen = new Set(graph.acceptedCounts().keys())
  expect(seen.has(poison.broken) || seen.has(poison.oversized) || seen.has(poison.rejected)).toBe(
    false,
  )
  expect((await mailer.readyz()).status).toBe(200)
  report('8 poison input', {
    sent: good.length,
    failed: Object.keys(poison).length,
    refusedAtInsert: 3,
    duplicates: sends.duplicates,
    ambiguousResends: sends.ambiguousResends,
    drain: seconds(drainMs),
  })
  mailer.proc.kill('SIGTERM')
  expect(await mailer.exited).toBe(0)
}, 60_000)
