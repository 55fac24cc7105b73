// The drainer's "claim failed; retrying" line: what Postgres names of the failure (SQLSTATE, table, constraint, function, statement), never its message or DETAIL, which can quote a row's values.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { createLogger } from '../../src/log.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

test("a claim refused by a trigger that quotes the row (as a DBA's audit trigger might) is logged with the names to act on, not the address", async () => {
  const address = `claimed-${crypto.randomUUID()}@example.com`
  // The message and DETAIL quote the recipient; the names are what the DBA gave.
  await t.pool.query(`
    create function mailer.refuse_claims() returns trigger language plpgsql as $$
    begin
      raise exception 'no mail to %', new.message ->> 'to'
        using errcode = 'P0042', detail = 'recipient ' || (new.message ->> 'to'),
              hint = 'ask about ' || (new.message ->> 'to'),
              table = 'email_outbox', schema = 'mailer', constraint = 'audit_hold', column = 'status';
    end $$;
    create trigger refuse_claims before update on mailer.email_outbox
      for each row when (new.status = 'sending') execute function mailer.refuse_claims()`)
  const lines: string[] = []
  const engine = createTestEngine(t, { deps: { log: createLogger('warn', (l) => lines.push(l)) } })
  try {
    await engine.start()
    await enqueue(t, { to: address, subject: 'Hello', text: 'Hi there' })
    await engine.events.waitFor((x) => x.type === 'loop_error' && x.where === 'claim')
  } finally {
    await engine.stop()
    await t.pool.query(`drop trigger refuse_claims on mailer.email_outbox;
                        drop function mailer.refuse_claims()`)
  }
  const claimLines = lines.filter((l) => l.includes('claim failed; retrying'))
  expect(claimLines.length).toBeGreaterThan(0)
  expect(lines.filter((l) => l.includes(address))).toEqual([])
  expect(JSON.parse(claimLines[0]!).err).toEqual({
    code: 'P0042',
    severity: 'ERROR',
    schema: 'mailer',
    table: 'email_outbox',
    column: 'status',
    constraint: 'audit_hold',
    function: 'mailer.refuse_claims()',
    routine: 'exec_stmt_raise',
    statement: expect.stringMatching(/^outbox_claim_/),
  })
})
