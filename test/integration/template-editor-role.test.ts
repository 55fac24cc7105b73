// A role that may edit mailer.templates and nothing else of ours keeps editing them after 0056: the replaced sender is noted all the same.
import { beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
const role = `template_editor_${process.pid}`

beforeAll(async () => {
  await t.createRole(role, 'nologin')
  // As a DBA granted the tool that keeps the templates (an admin page, a deploy script) table by
  // table before 0056: the templates, and the outbox rows an edit of a from_address rekeys (0040);
  // mailer.sender_mailboxes did not exist then.
  await t.pool.query(`
    grant usage on schema mailer to ${role};
    grant select, insert, update on mailer.templates to ${role};
    grant select, update on mailer.email_outbox to ${role};`)
})

async function asEditor(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: t.url })
  await c.connect()
  try {
    await c.query(`set role ${role}; set search_path = ''`)
    await c.query(text)
  } finally {
    await c.end()
  }
}

test('its edit of a template’s from_address succeeds, and the address it replaced is noted', async () => {
  await asEditor(`insert into mailer.templates (name, subject, text_body, to_addresses, from_address)
                    values ('notice', 'Notice', 'x', array['rcpt@example.com'], 'Desk <Old@Example.com>')`)
  const edit = asEditor(
    `update mailer.templates set from_address = 'new@example.com' where name = 'notice'`,
  ).then(
    () => 'edited',
    (err: Error) => err.message,
  )
  expect(await edit).toBe('edited')
  const { rows } = await t.pool.query('select mailbox from mailer.sender_mailboxes')
  expect(rows).toEqual([{ mailbox: 'old@example.com' }])
})
