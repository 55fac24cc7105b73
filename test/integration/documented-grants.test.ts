// What deploy/README.md step 7 tells a DBA: the application's and the service's grants, run as written, are enough; two SECURITY DEFINER trigger functions.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { systemClock } from '../../src/clock.ts'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import { assertSchemaCurrent } from '../../src/db/schema-state.ts'
import { silentLogger } from '../../src/log.ts'
import { createPgSendGate } from '../../src/outbox/pg-send-gate.ts'
import { ensureSlots } from '../../src/outbox/send-slots.ts'
import { ROOT } from '../deploy/deploy-files.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { serviceRoleGrants } from '../support/service-role-grants.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
const role = `app_grants_${process.pid}`

/** Step 7's SQL block that grants the application role (`app` there) its rights, for `role`. */
function documentedGrants(): string {
  const guide = readFileSync(join(ROOT, 'deploy/README.md'), 'utf8')
  const block = /needs these grants[\s\S]*?```sql\n([\s\S]*?)```/.exec(guide)?.[1]
  if (!block) throw new Error('deploy/README.md step 7 has no grants block')
  return block.replaceAll(/\bapp\b/g, role)
}

/** Step 7's SQL block that lets the application role read back its rows' state, for `role`. */
function documentedReadGrants(): string {
  const guide = readFileSync(join(ROOT, 'deploy/README.md'), 'utf8')
  const block = /read back\s+whether its mail went[\s\S]*?```sql\n([\s\S]*?)```/.exec(guide)?.[1]
  if (!block)
    throw new Error('deploy/README.md step 7 has no block granting the application its rows’ state')
  return block.replaceAll(/\bapp\b/g, role)
}

/** Runs `fn` on a session of its own that has taken the application role (SET ROLE), with no search_path. */
async function asApp<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: t.url })
  await c.connect()
  try {
    // The guide says a caller's search_path changes nothing: every name of ours is qualified.
    await c.query(`set role ${role}; set search_path = ''`)
    return await fn(c)
  } finally {
    await c.end()
  }
}

const message = JSON.stringify({ to: 'rcpt@example.com', subject: 'Hello', text: 'Hi' })

/** What an application does: enqueue (a repeated dedupe key too) and insert into a table whose trigger enqueues. */
async function enqueueAsApp() {
  return asApp(async (c) => {
    const enqueue = async (options: object) =>
      (
        await c.query<{ id: string }>('select mailer.enqueue_email($1::jsonb, $2::jsonb) as id', [
          message,
          JSON.stringify(options),
        ])
      ).rows[0]!.id
    const plain = await enqueue({})
    const keyed = await enqueue({ dedupeKey: 'order-1', sendAt: '2030-01-01T00:00:00Z' })
    const repeat = await enqueue({ dedupeKey: 'order-1' })
    await c.query(`insert into public.inquiries (name) values ('Ada')`)
    return { plain, keyed, repeat }
  })
}

beforeAll(async () => {
  await t.createRole(role, 'nologin')
})

describe('the deploy guide’s grants for an application role', () => {
  afterAll(async () => {
    await t.pool.query(`drop owned by ${role}`)
  })
  beforeAll(async () => {
    await t.pool.query(`
      create table public.inquiries (id bigint generated always as identity primary key, name text, secret text);
      grant insert on public.inquiries to ${role};
      create trigger inquiries_mail after insert on public.inquiries for each row
        execute function mailer.enqueue_from_row('inquiry', '{"tenant": "acme", "columns": ["name"]}');`)
  })
  beforeAll(async () => {
    await t.pool.query(documentedGrants())
  })
  const template = () =>
    t.pool.query(
      `insert into mailer.templates (name, subject, text_body, to_addresses) values ('inquiry', 'From {{name}}', 'x', array['sales@example.com'])`,
    )

  test('let it enqueue, by function and by trigger (every function executable by PUBLIC, as by default)', async () => {
    await template()
    const ids = await enqueueAsApp()
    expect(ids.repeat).toBe(ids.keyed)
    const { rows } = await t.pool.query(
      'select tenant, template, source_row from mailer.email_outbox order by id',
    )
    expect(rows).toEqual([
      { tenant: 'default', template: null, source_row: null },
      { tenant: 'default', template: null, source_row: null },
      { tenant: 'acme', template: 'inquiry', source_row: { name: 'Ada' } },
    ])
  })

  test('with the read grants, it reads back whether its mail went (status, code, history), never a message or source row', async () => {
    await template()
    await t.pool.query(documentedReadGrants())
    const { keyed, repeat } = await asApp(async (c) => {
      const enqueue = async () =>
        (
          await c.query<{ id: string }>(
            `select mailer.enqueue_email($1::jsonb, '{"tenant": "acme", "dedupeKey": "order-1"}') as id`,
            [message],
          )
        ).rows[0]!.id
      const keyed = await enqueue()
      const repeat = await enqueue()
      await c.query(`insert into public.inquiries (name) values ('Ada')`)
      return { keyed, repeat }
    })
    expect(repeat).toBe(keyed)
    // The template deleted before the trigger's row is sent: that row fails at send, as the guide says.
    await t.pool.query(`delete from mailer.templates where name = 'inquiry'`)
    const engine = createTestEngine(t)
    try {
      await engine.start()
      await pollUntil(async () => {
        const r = await t.pool.query(
          `select count(*)::int as n from mailer.email_outbox where status in ('sent', 'failed')`,
        )
        return r.rows[0].n === 2 ? true : undefined
      }, 20_000)
    } finally {
      await engine.stop()
    }
    const read = await asApp(async (c) => {
      // The guide's query: by the dedupe key enqueue was given, or by the id it returned.
      const byKey = await c.query(
        `select id, status, attempts, sent_at is not null as sent, last_error_code
           from mailer.email_outbox where tenant = 'acme' and dedupe_key = 'order-1'`,
      )
      const all = await c.query(
        'select id, status, template, last_error_code from mailer.email_outbox order by id',
      )
      const history = await c.query(
        'select outbox_id, attempt, outcome, error_code from mailer.email_attempts order by outbox_id, id',
      )
      const refused = []
      for (const column of ['message', 'source_row', 'lease_token']) {
        refused.push(
          await c
            .query(`select ${column} from mailer.email_outbox`)
            .then(() => 'read')
            .catch((err: { code?: string }) => err.code),
        )
      }
      return { byKey: byKey.rows, all: all.rows, history: history.rows, refused }
    })
    expect(read.byKey).toEqual([
      { id: keyed, status: 'sent', attempts: 1, sent: true, last_error_code: null },
    ])
    // The repeat took an id of the sequence too (an insert ON CONFLICT draws one before it conflicts).
    const failedId = (
      await t.pool.query(`select id from mailer.email_outbox where template = 'inquiry'`)
    ).rows[0].id
    expect(read.all).toEqual([
      { id: keyed, status: 'sent', template: null, last_error_code: null },
      {
        id: failedId,
        status: 'failed',
        template: 'inquiry',
        last_error_code: 'template_not_found',
      },
    ])
    expect(read.history).toEqual([
      { outbox_id: keyed, attempt: 1, outcome: 'sent', error_code: null },
      { outbox_id: failedId, attempt: 1, outcome: 'failed', error_code: 'template_not_found' },
    ])
    expect(read.refused).toEqual(['42501', '42501', '42501'])
  })

  test('let it enqueue in a database that revokes EXECUTE from PUBLIC, also through a helper function a later release adds', async () => {
    await template()
    // A hardened database: no function is executable by PUBLIC, now or when created later.
    await t.pool.query(`
      revoke execute on all functions in schema mailer from public;
      alter default privileges revoke execute on functions from public;`)
    try {
      await t.pool.query(documentedGrants())
      // As a later release's migration adds a helper that enqueue_email calls (0020, 0023, 0024 did).
      await t.pool.query(
        `create function mailer.later_helper(m jsonb) returns jsonb language sql immutable as 'select m'`,
      )
      const ids = await enqueueAsApp()
      expect(ids.repeat).toBe(ids.keyed)
      expect(
        await asApp(async (c) => (await c.query(`select mailer.later_helper('{}') as r`)).rows),
      ).toEqual([{ r: {} }])
    } finally {
      await t.pool.query(`
        drop function if exists mailer.later_helper(jsonb);
        alter default privileges grant execute on functions to public;
        grant execute on all functions in schema mailer to public;`)
    }
  })
})

test('the trigger is created by its table’s owner once the guide’s grants give it the schema; before them, refused as the guide says', async () => {
  // Step 7: the template as the schema's owner, the trigger as the table's (the application's
  // migrations' role), which needs `usage` on schema mailer to name mailer.enqueue_from_row.
  const owner = `app_tables_${process.pid}`
  await t.createRole(owner, 'nologin')
  await t.pool.query(`
    create table public.contact_requests (id bigint generated always as identity primary key, name text);
    alter table public.contact_requests owner to ${owner};
    insert into mailer.templates (name, subject, text_body, to_addresses)
      values ('contact', 'From {{name}}', 'x', array['sales@example.com']);`)
  const asOwner = async (sql: string) => {
    const c = new pg.Client({ connectionString: t.url })
    await c.connect()
    try {
      await c.query(`set role ${owner}`)
      return await c.query(sql)
    } finally {
      await c.end()
    }
  }
  const createTrigger = `create trigger contact_requests_mail after insert on public.contact_requests
    for each row execute function mailer.enqueue_from_row('contact')`
  try {
    const refused = await asOwner(createTrigger).then(
      () => null,
      (e: { code?: string; message?: string }) => ({ code: e.code, message: e.message }),
    )
    expect(refused).toEqual({ code: '42501', message: 'permission denied for schema mailer' })
    await t.pool.query(documentedGrants().replaceAll(role, owner))
    await asOwner(createTrigger)
    await asOwner(`insert into public.contact_requests (name) values ('Ada')`)
    const { rows } = await t.pool.query(
      `select template, correlation_id from mailer.email_outbox where template = 'contact'`,
    )
    expect(rows).toEqual([{ template: 'contact', correlation_id: 'public.contact_requests:1' }])
  } finally {
    await t.pool.query(`drop table if exists public.contact_requests; drop owned by ${owner}`)
  }
})

test('no function of the mailer schema runs with its owner’s rights (SECURITY DEFINER) but the trigger functions the guide names, their search_path pinned', async () => {
  const { rows } = await t.pool.query(
    `select count(*)::int as functions,
            coalesce(json_agg(json_build_object('name', proname, 'returns', prorettype::regtype::text,
              'config', proconfig))
              filter (where prosecdef), '[]') as definer
       from pg_proc where pronamespace = 'mailer'::regnamespace`,
  )
  expect(rows[0].functions).toBeGreaterThan(10)
  expect(
    (rows[0].definer as { name: string; returns: string; config: string[] }[]).sort((a, b) =>
      a.name.localeCompare(b.name),
    ),
  ).toEqual([
    {
      name: 'note_replaced_sender',
      returns: 'trigger',
      config: ['search_path=pg_catalog, pg_temp', 'standard_conforming_strings=on'],
    },
    {
      name: 'probe_due_follows_rows',
      returns: 'trigger',
      config: ['search_path=pg_catalog, pg_temp', 'standard_conforming_strings=on'],
    },
  ])
})

describe('the deploy guide’s grants for outbox-mailer’s own role', () => {
  const svc = `mailer_svc_${process.pid}`
  const password = `pw-${randomBytes(12).toString('hex')}`
  let handle: DbHandle | null = null
  afterAll(async () => {
    await handle?.close()
  })

  test('let it read the schema state, claim, send through the shared limits and settle; a table a later release adds too', async () => {
    await t.createRole(svc, `login password '${password}'`)
    await t.pool.query(serviceRoleGrants(svc))
    const url = new URL(t.url)
    url.username = svc
    url.password = password
    handle = openDb({ name: 'test', url: url.toString(), log: silentLogger })
    expect(await assertSchemaCurrent(handle.pool, 'test')).toEqual({ newer: [] })
    await ensureSlots(handle.db, 2)
    const gate = createPgSendGate({
      db: handle.db,
      clock: systemClock,
      log: silentLogger,
      holder: 'svc-worker',
      maxConcurrency: 2,
      ratePerMinute: 600,
      slotTtlMs: 30_000,
      maxWaitMs: 20_000,
    })
    const engine = createTestEngine(t, { handle, listenUrl: url.toString(), deps: { gate } })
    try {
      await engine.start()
      const id = await enqueue(t, undefined, { expiresAt: '2100-01-01T00:00:00Z' })
      await engine.events.waitFor(settledFor(id, 'sent'), 20_000)
    } finally {
      await engine.stop()
    }
    const { rows } = await t.pool.query(
      `select (select status from mailer.email_outbox) as status,
              (select count(*)::int from mailer.email_attempts) as attempts,
              (select count(*)::int from mailer.mailbox_pacing) as paced,
              (select count(*)::int from mailer.workers) as registered,
              (select array_agg(mailbox) from mailer.sender_mailboxes) as noted`,
    )
    // The stopped worker took itself out of the registry (a delete), its MAIL_FROM noted as a past
    // sender (an upsert, at its first claim and its stop: past-senders.ts); paced: the mailbox's
    // turn and the rate the worker noted at its start (pacing-rate.ts).
    expect(rows).toEqual([
      { status: 'sent', attempts: 1, paced: 2, registered: 0, noted: ['sender@example.com'] },
    ])
    // As a later release's migration adds a table, run as the owner.
    await t.pool.query('create table mailer.later_table (id int primary key)')
    const later = await handle.pool.query('insert into mailer.later_table values (1) returning id')
    expect(later.rows).toEqual([{ id: 1 }])
  })
})
