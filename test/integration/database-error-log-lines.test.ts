// The engine's log lines about a failed statement (settlement, heartbeat, reclaim) name the server's error, never its message, DETAIL or HINT, which can quote a row's values.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { createLogger } from '../../src/log.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
let engine: TestEngine | null = null

afterEach(async () => {
  await engine?.stop()
  engine = null
  await t.pool.query(`drop trigger if exists quote_row on mailer.email_outbox;
                      drop function if exists mailer.quote_row()`)
})

/** A DBA's audit trigger refusing the updates `when` picks, quoting the recipient in every part it can. */
async function refuseQuotingRow(when: string, errcode: string) {
  await t.pool.query(`
    create function mailer.quote_row() returns trigger language plpgsql as $$
    begin
      raise exception 'no mail to %', new.message ->> 'to'
        using errcode = '${errcode}', detail = 'recipient ' || (new.message ->> 'to'),
              hint = 'ask about ' || (new.message ->> 'to'),
              table = 'email_outbox', schema = 'mailer', constraint = 'audit_hold';
    end $$;
    create trigger quote_row before update on mailer.email_outbox
      for each row when (${when}) execute function mailer.quote_row()`)
}

/** Runs an engine logging into `lines` until a line says `msg` (its sends held open if `hold`): the lines by then, that line's err. */
async function linesUntil(
  msg: string,
  address: string,
  o: { hold?: boolean; config?: object } = {},
) {
  const lines: string[] = []
  engine = createTestEngine(t, {
    config: o.config,
    deps: { log: createLogger('debug', (l) => lines.push(l)) },
  })
  if (o.hold) engine.sender.hold()
  await engine.start()
  await enqueue(t, { to: address, subject: 'Hello', text: 'Hi there' })
  const line = await pollUntil(async () => lines.find((l) => l.includes(`"msg":"${msg}`)))
  engine.sender.release()
  return { lines, err: JSON.parse(line).err as Record<string, unknown> }
}

const NAMES = {
  severity: 'ERROR',
  schema: 'mailer',
  table: 'email_outbox',
  constraint: 'audit_hold',
  function: 'mailer.quote_row()',
  routine: 'exec_stmt_raise',
}

test('a settlement refused by a trigger that quotes the row is logged by its names, not the address', async () => {
  const address = `settled-${crypto.randomUUID()}@example.com`
  await refuseQuotingRow(`new.status = 'sent'`, '23514')
  const { lines, err } = await linesUntil('recording a send outcome failed', address)
  expect(lines.filter((l) => l.includes(address))).toEqual([])
  expect(err).toMatchObject({ code: '23514', ...NAMES })
  expect(err).not.toHaveProperty('message')
})

test('a heartbeat refused by a trigger that quotes the row is logged by its names, not the address', async () => {
  const address = `beaten-${crypto.randomUUID()}@example.com`
  await refuseQuotingRow(`old.status = 'sending' and new.status = 'sending'`, 'P0042')
  const { lines, err } = await linesUntil('heartbeat failed', address, {
    hold: true,
    config: { heartbeatSeconds: 1 },
  })
  expect(lines.filter((l) => l.includes(address))).toEqual([])
  expect(err).toMatchObject({ code: 'P0042', ...NAMES })
  expect(err).not.toHaveProperty('message')
})

test('a reclaim refused by a trigger that quotes the row is logged by its names, not the address', async () => {
  const address = `reclaimed-${crypto.randomUUID()}@example.com`
  await refuseQuotingRow(`old.status = 'sending' and new.status <> 'sending'`, 'P0042')
  const lines: string[] = []
  // A short lease: the reclaim after the first comes a lease length later.
  engine = createTestEngine(t, {
    config: { leaseSeconds: 2, heartbeatSeconds: 1 },
    deps: { log: createLogger('debug', (l) => lines.push(l)) },
  })
  await engine.start()
  // A lease a worker gone left ended: the next reclaim takes it back.
  await t.pool.query(
    `insert into mailer.email_outbox (message, status, attempts, lease_token, lease_expires_at)
     values ($1::jsonb, 'sending', 1, gen_random_uuid(), now() - interval '1 minute')`,
    [JSON.stringify({ to: [{ address }], subject: 'Hello', text: 'Hi there' })],
  )
  await engine.events.waitFor((x) => x.type === 'loop_error' && x.where === 'reclaim')
  const line = lines.find((l) => l.includes('"msg":"reclaim failed"'))
  expect(lines.filter((l) => l.includes(address))).toEqual([])
  expect(JSON.parse(line!).err).toMatchObject({ code: 'P0042', ...NAMES })
})
