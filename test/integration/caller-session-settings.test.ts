// An application's session settings change nothing mailer's functions do: standard_conforming_strings off, an operator earlier on its search_path.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

/** `fn` on a session of its own that ran `setup` first, as an application's connection would. */
async function inSession<T>(setup: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: t.url })
  await c.connect()
  try {
    await c.query(setup)
    return await fn(c)
  } finally {
    await c.end()
  }
}

const message = JSON.stringify({
  to: ['Ada <ada@example.com>'],
  cc: 'ops@example.com',
  subject: 'Hi',
  text: 'Hello',
  attachments: [{ filename: 'a.txt', contentBase64: 'aGk=', contentType: 'text/plain' }],
})

/** What an application does: enqueue with options, insert a template, insert a row whose trigger enqueues. */
async function enqueueAll(c: pg.Client) {
  const { rows } = await c.query<{ id: string }>(
    `select mailer.enqueue_email($1::jsonb, '{"priority": 5, "maxAttempts": 3, "tenant": "acme"}') as id`,
    [message],
  )
  await c.query(
    `insert into mailer.templates (name, subject, text_body, to_addresses, from_address)
     values ('inquiry', 'From {{name}}', 'x', array['Sales <sales@example.com>'], 'Desk <desk@example.com>')`,
  )
  await c.query(`insert into public.inquiries (name, org) values ('Ada', 'acme')`)
  return rows[0]!.id
}

beforeAll(async () => {
  await t.pool.query(`
    create table public.inquiries (id bigint generated always as identity primary key, name text, org text);
    create trigger inquiries_mail after insert on public.inquiries for each row
      execute function mailer.enqueue_from_row('inquiry', '{"priority": 5, "tenantColumn": "org"}');`)
})

async function outboxRows() {
  const { rows } = await t.pool.query(
    `select tenant, priority, max_attempts, template, sender_key, message -> 'to' as to
       from mailer.email_outbox order by id`,
  )
  return rows
}

const expected = [
  {
    tenant: 'acme',
    priority: 5,
    max_attempts: 3,
    template: null,
    sender_key: null,
    to: [{ address: 'ada@example.com', name: 'Ada' }],
  },
  {
    tenant: 'acme',
    priority: 5,
    max_attempts: null,
    template: 'inquiry',
    sender_key: 'desk@example.com',
    to: null,
  },
]

describe('standard_conforming_strings = off in the caller’s session (older drivers and ORMs set it)', () => {
  const off = 'set standard_conforming_strings = off; set escape_string_warning = off'

  test('enqueue, a template and a trigger insert are stored as with it on', async () => {
    // Each regular expression of ours read its backslashes as escapes: enqueue_email failed with
    // "invalid byte sequence for encoding UTF8: 0x9f", a trigger's priority option was refused.
    await inSession(off, enqueueAll)
    expect(await outboxRows()).toEqual(expected)
  })

  test('bad input is still refused naming its field', async () => {
    await inSession(off, async (c) => {
      await expect(
        c.query(
          `select mailer.enqueue_email('{"to": "a b@example.com", "subject": "x", "text": "y"}')`,
        ),
      ).rejects.toThrow(/message\.to/)
      await expect(
        c.query(
          `insert into mailer.templates (name, subject, text_body, to_addresses) values ('t', E'\\u00a0', 'x', array['x@example.com'])`,
        ),
      ).rejects.toThrow(/subject/)
    })
  })
})

describe('an operator of the caller’s own, earlier on its search_path', () => {
  // Postgres prefers an operator whose argument types match exactly: jsonb ? 'literal' took one
  // (jsonb, jsonb) from any schema on the path over pg_catalog's (jsonb, text): every enqueue and
  // every trigger insert failed (the literal read as JSON), in the application's transaction.
  beforeAll(async () => {
    await t.pool.query(`
      create schema app_ops;
      create function app_ops.hijacked(a jsonb, b jsonb) returns boolean language plpgsql as
        $$ begin raise exception 'app_ops operator ran'; end $$;
      create operator app_ops.? (leftarg = jsonb, rightarg = jsonb, function = app_ops.hijacked);
      create function app_ops.hijacked_text(a jsonb, b jsonb) returns text language plpgsql as
        $$ begin raise exception 'app_ops operator ran'; end $$;
      create operator app_ops.->> (leftarg = jsonb, rightarg = jsonb, function = app_ops.hijacked_text);
      create function app_ops.hijacked_divide(a float8, b integer) returns float8 language plpgsql as
        $$ begin raise exception 'app_ops operator ran'; end $$;
      create operator app_ops./ (leftarg = float8, rightarg = integer, function = app_ops.hijacked_divide);`)
  })
  afterAll(async () => {
    await t.pool.query('drop schema app_ops cascade')
  })

  test('is never called: enqueue, a template and a trigger insert are stored as without it', async () => {
    await inSession('set search_path = app_ops, public', enqueueAll)
    expect(await outboxRows()).toEqual(expected)
  })

  test('is never called by settle_verdict, the SQL function inlined into the service’s settlement', async () => {
    // float8 / 1000 matched a (float8, integer) operator exactly, which pg_catalog has not: it ran
    // with the service's rights, whatever schema came first, in every settlement of a retry.
    const verdict = await inSession('set search_path = pg_catalog, app_ops', async (c) => {
      const { rows } = await c.query<{ v: string }>(
        `select mailer.settle_verdict('retry', false, 1000, now(), now() + interval '1 hour', 1, 3, 86400) as v`,
      )
      return rows[0]!.v
    })
    expect(verdict).toBe('retry')
  })
})

test('every PL/pgSQL function of the mailer schema pins search_path and standard_conforming_strings', async () => {
  // A function replaced by a later migration (create or replace) loses settings it does not restate.
  const { rows } = await t.pool.query<{ proname: string; proconfig: string[] | null }>(
    `select p.proname, p.proconfig from pg_proc p join pg_language l on l.oid = p.prolang
      where p.pronamespace = 'mailer'::regnamespace and l.lanname = 'plpgsql' order by 1`,
  )
  expect(rows.length).toBeGreaterThan(20)
  const unpinned = rows
    .filter(
      (r) =>
        !r.proconfig?.includes('search_path=pg_catalog, pg_temp') ||
        !r.proconfig.includes('standard_conforming_strings=on'),
    )
    .map((r) => r.proname)
  expect(unpinned).toEqual([])
})
