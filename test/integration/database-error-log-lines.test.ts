// The engine's log lines about a failed statement (settlement, heartbeat, reclaim) name the server's error, never its message, DETAIL or HINT, which can quote a row's values.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { createLogger } from '../../src/log.ts'
import { useTestDb } from '../support/db.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import {
  dropQuotingTrigger,
  QUOTING_TRIGGER_NAMES,
  refuseQuotingRow,
} from '../support/row-quoting-trigger.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
const ended = endedAfterEach()

/** An engine logging into `lines`, stopped after the test, then the trigger dropped. */
function engineLogging(lines: string[], config = {}) {
  const engine = createTestEngine(t, {
    config,
    deps: { log: createLogger('debug', (l) => lines.push(l)) },
  })
  ended.engines.push(engine)
  ended.closing.push(() => dropQuotingTrigger(t.pool))
  return engine
}

/** Runs an engine logging into `lines` until a line says `msg` (its sends held open if `hold`): the lines by then, that line's err. */
async function linesUntil(
  msg: string,
  address: string,
  o: { hold?: boolean; config?: object } = {},
) {
  const lines: string[] = []
  const engine = engineLogging(lines, o.config)
  if (o.hold) engine.sender.hold()
  await engine.start()
  await enqueue(t, { to: address, subject: 'Hello', text: 'Hi there' })
  const line = await pollUntil(async () => lines.find((l) => l.includes(`"msg":"${msg}`)))
  engine.sender.release()
  return { lines, err: JSON.parse(line).err as Record<string, unknown> }
}

/** No line quotes `address`; `err` names the trigger's error (`code`), without its message. */
function expectNamedOnly(lines: string[], err: unknown, address: string, code: string) {
  expect(lines.filter((l) => l.includes(address))).toEqual([])
  expect(err).toMatchObject({ code, severity: 'ERROR', ...QUOTING_TRIGGER_NAMES })
  expect(err).not.toHaveProperty('message')
}

test('a settlement refused by a trigger that quotes the row is logged by its names, not the address', async () => {
  const address = `settled-${crypto.randomUUID()}@example.com`
  await refuseQuotingRow(t.pool, { event: 'update', when: `new.status = 'sent'`, errcode: '23514' })
  const { lines, err } = await linesUntil('recording a send outcome failed', address)
  expectNamedOnly(lines, err, address, '23514')
})

test('a heartbeat refused by a trigger that quotes the row is logged by its names, not the address', async () => {
  const address = `beaten-${crypto.randomUUID()}@example.com`
  await refuseQuotingRow(t.pool, {
    event: 'update',
    when: `old.status = 'sending' and new.status = 'sending'`,
  })
  const { lines, err } = await linesUntil('heartbeat failed', address, {
    hold: true,
    config: { heartbeatSeconds: 1 },
  })
  expectNamedOnly(lines, err, address, 'P0042')
})

test('a reclaim refused by a trigger that quotes the row is logged by its names, not the address', async () => {
  const address = `reclaimed-${crypto.randomUUID()}@example.com`
  await refuseQuotingRow(t.pool, {
    event: 'update',
    when: `old.status = 'sending' and new.status <> 'sending'`,
  })
  const lines: string[] = []
  // A short lease: the reclaim after the first comes a lease length later.
  const engine = engineLogging(lines, { leaseSeconds: 2, heartbeatSeconds: 1 })
  await engine.start()
  // A lease a worker gone left ended: the next reclaim takes it back.
  await t.pool.query(
    `insert into mailer.email_outbox (message, status, attempts, lease_token, lease_expires_at)
     values ($1::jsonb, 'sending', 1, gen_random_uuid(), now() - interval '1 minute')`,
    [JSON.stringify({ to: [{ address }], subject: 'Hello', text: 'Hi there' })],
  )
  await engine.events.waitFor((x) => x.type === 'loop_error' && x.where === 'reclaim')
  const line = lines.find((l) => l.includes('"msg":"reclaim failed"'))
  expectNamedOnly(lines, JSON.parse(line!).err, address, 'P0042')
})
