// A generated column of the application's table reaches the trigger's source row with its value: Postgres 18's VIRTUAL ones (its default) too.
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

beforeEach(async () => {
  // Postgres 18 computes a VIRTUAL column when a query reads it, never for a trigger's NEW, which
  // held NULL: the mail said "Dear ," where the application read "Dear ADA". Before 18 a generated
  // column is STORED, which the trigger always saw.
  const { rows } = await t.pool.query<{ v: number }>(
    `select current_setting('server_version_num')::int as v`,
  )
  const kind = rows[0]!.v >= 180000 ? 'virtual' : 'stored'
  await t.pool.query(`
    drop table if exists public.people;
    create table public.people (id bigint generated always as identity primary key, name text,
      net numeric(10, 2),
      shout text generated always as (upper(name)) ${kind},
      gross numeric(10, 2) generated always as (net * 1.2) ${kind},
      "Full Name" text generated always as (name || ' ' || 'Lovelace') ${kind});
    insert into mailer.templates (name, subject, text_body, to_addresses)
    values ('person', 'Dear {{shout}}', '{{Full Name}}: {{gross}}', array['desk@example.com']);`)
})

test('on insert, the row’s generated columns are stored and rendered with their values', async () => {
  await t.pool.query(`
    create trigger people_mail after insert on public.people for each row
      execute function mailer.enqueue_from_row('person');`)
  await t.pool.query(`insert into public.people (name, net) values ('Ada', 10.00)`)
  const { rows } = await t.pool.query('select source_row from mailer.email_outbox')
  expect(rows).toEqual([
    {
      source_row: {
        id: 1,
        name: 'Ada',
        net: 10,
        shout: 'ADA',
        gross: 12,
        'Full Name': 'Ada Lovelace',
      },
    },
  ])
  engine = createTestEngine(t)
  await engine.start()
  await allIn(t, 'sent', 1)
  expect(engine.sender.calls.map((c) => [c.subject, c.text])).toEqual([
    ['Dear ADA', 'Ada Lovelace: 12.00'],
  ])
})

test('on delete, the row deleted carries them; with "columns", only those named', async () => {
  await t.pool.query(`
    create trigger people_gone after delete on public.people for each row
      execute function mailer.enqueue_from_row('person', '{"columns": ["shout", "name"]}');
    insert into public.people (name, net) values ('Ada', 10.00);
    delete from public.people;`)
  const { rows } = await t.pool.query('select source_row from mailer.email_outbox')
  expect(rows).toEqual([{ source_row: { name: 'Ada', shout: 'ADA' } }])
})
