// A json column holding \u0000 or a lone surrogate (valid json, which jsonb refuses): the application's insert commits, the row's mail is sent.
import { afterEach, beforeEach, expect, setDefaultTimeout, test } from 'bun:test'
import { useTestDb } from '../support/db.ts'
import { allIn, createTestEngine, type TestEngine } from '../support/engine.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
let engine: TestEngine | null = null
afterEach(async () => {
  await engine?.stop()
  engine = null
})

// Typed json: the column keeps its text as written, \u0000 escape included (a form's payload).
const payload = String.raw`{"note": "a\u0000b", "half": "\ud800", "n": 1}`

beforeEach(async () => {
  await t.pool.query(`
    drop table if exists public.forms;
    drop type if exists public.record_payload;
    create type public.record_payload as (doc json, n int);
    create table public.forms (id bigint generated always as identity primary key, name text,
      payload json, item_payloads json[], item public.record_payload);
    insert into mailer.templates (name, subject, text_body, to_addresses)
    values ('form', 'From {{name}}', '{{name}} sent {{payload}}', array['desk@example.com']);`)
})

test('the insert commits; the column is kept as its JSON text and the mail sent with it', async () => {
  await t.pool.query(`
    create trigger forms_mail after insert on public.forms for each row
      execute function mailer.enqueue_from_row('form');`)
  // Before: "unsupported Unicode escape sequence" (SQLSTATE 22P05; a lone surrogate alone: 22P02)
  // from to_jsonb(NEW), and the application's INSERT failed with it.
  await t.pool.query(
    `insert into public.forms (name, payload, item_payloads, item) values ('Ada', $1, array[$1::json], row($1, 2))`,
    [payload],
  )
  const { rows } = await t.pool.query('select source_row from mailer.email_outbox')
  expect(rows).toEqual([
    {
      source_row: {
        id: 1,
        name: 'Ada',
        payload,
        item_payloads: `[${payload}]`,
        item: `{"doc":${payload},"n":2}`,
      },
    },
  ])
  engine = createTestEngine(t)
  await engine.start()
  await allIn(t, 'sent', 1)
  expect(engine.sender.calls.map((c) => c.text)).toEqual([`Ada sent ${payload}`])
})

test('with "columns" leaving the column out, the row is stored as without it', async () => {
  await t.pool.query(`
    create trigger forms_mail after insert on public.forms for each row
      execute function mailer.enqueue_from_row('form', '{"columns": ["name"]}');`)
  await t.pool.query(`insert into public.forms (name, payload) values ('Ada', $1)`, [payload])
  const { rows } = await t.pool.query('select source_row from mailer.email_outbox')
  expect(rows).toEqual([{ source_row: { name: 'Ada' } }])
})
