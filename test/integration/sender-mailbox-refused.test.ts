// A MAIL_FROM Graph refuses (unknown, not enabled): its rows wait uncounted and said loudly, a row's own bad from fails alone, sending resumes.
import { afterEach, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import { createLogger } from '../../src/log.ts'
import { createTransport, type Transport } from '../../src/transport-wiring.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { type FakeGraph, type FakeGraphOptions, startFakeGraph } from '../support/fake-graph.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const MAIL_FROM = 'sender@example.com'
const OWN = 'own@example.com'
const ROWS = 20

interface Run {
  fake: FakeGraph
  transport: Transport
  engine: TestEngine
  lines: string[]
}
let run: Run | null = null
afterEach(async () => {
  await run?.engine.stop()
  await run?.fake.stop()
  run = null
})

/** A worker wired as serve wires Graph (createTransport): the shared gate, no pacing, MAIL_FROM as given. */
async function startWorker(fakeOptions: FakeGraphOptions): Promise<Run> {
  const fake = await startFakeGraph({
    clientSecret: 'right',
    concurrencyLimit: 1000,
    ...fakeOptions,
  })
  const lines: string[] = []
  const log = createLogger('debug', (l) => lines.push(l))
  const config = loadConfig(
    {
      MAIL_TRANSPORT: 'graph',
      MAIL_FROM,
      GRAPH_TENANT_ID: fake.tenantId,
      GRAPH_CLIENT_ID: fake.clientId,
      GRAPH_CLIENT_SECRET: 'right',
      GRAPH_AUTHORITY_URL: fake.authorityUrl,
      GRAPH_API_URL: fake.apiUrl,
      MAILBOX_RATE_PER_MINUTE: '0',
    },
    { requireDatabase: false },
  )
  const transport = createTransport(config, log)
  const engine = createTestEngine(t, {
    deps: {
      log,
      sender: transport.senderFor('test'),
      gate: transport.gateFor(t, 'test-worker'),
      lookup: transport.lookupFor('test'),
      sendBlockedForMs: transport.blockedForMs,
      sendTimeoutMs: 5_000,
      mailFrom: MAIL_FROM,
    },
  })
  await engine.start()
  run = { fake, transport, engine, lines }
  return run
}

/** Every listed row out of `sending` and tried (a code or sent): the worker is done with them for now. */
async function allTried(ids: string[]) {
  await pollUntil(async () => {
    const r = await t.pool.query(
      `select count(*)::int as n from mailer.email_outbox
        where id = any($1::bigint[]) and status <> 'sending'
          and (status = 'sent' or last_error_code is not null)`,
      [ids],
    )
    return r.rows[0].n === ids.length ? true : undefined
  }, 30_000)
}

async function rowsOf(ids: string[]) {
  const r = await t.pool.query(
    `select status, attempts, last_error_code from mailer.email_outbox
      where id = any($1::bigint[]) order by id`,
    [ids],
  )
  return r.rows
}

const parsed = (lines: string[]) => lines.map((l) => JSON.parse(l) as Record<string, unknown>)

describe('a sender mailbox (MAIL_FROM) Graph refuses', () => {
  test('unknown (404 ErrorInvalidUser): its rows wait uncounted, said once at error without the address; a row naming its own unknown mailbox fails alone; once the mailbox exists every row goes out once', async () => {
    // Graph knows only OWN: MAIL_FROM has a typo, as it were.
    const known = [OWN]
    const r = await startWorker({ mailboxes: known })
    const defaults: string[] = []
    for (let i = 0; i < ROWS; i++) defaults.push(await enqueue(t))
    const ghost = await enqueue(t, {
      from: 'ghost@example.com',
      to: 'rcpt@example.com',
      subject: 'Hello',
      text: 'Hi',
    })
    const own = await enqueue(t, {
      from: OWN,
      to: 'rcpt@example.com',
      subject: 'Hello',
      text: 'Hi',
    })
    await allTried([...defaults, ghost, own])

    // The row's own mailbox is the row's error: failed at once, as before.
    expect(await rowsOf([ghost])).toEqual([
      { status: 'failed', attempts: 1, last_error_code: 'ErrorInvalidUser' },
    ])
    expect(await rowsOf([own])).toEqual([{ status: 'sent', attempts: 1, last_error_code: null }])
    // MAIL_FROM's rows wait: not failed, no attempt burnt.
    const waiting = await rowsOf(defaults)
    expect(new Set(waiting.map((w) => JSON.stringify(w)))).toEqual(
      new Set([
        JSON.stringify({ status: 'pending', attempts: 0, last_error_code: 'ErrorInvalidUser' }),
        JSON.stringify({ status: 'pending', attempts: 0, last_error_code: 'mailbox_paused' }),
      ]),
    )
    // Not every row asked Graph: the first refusal paused the mailbox for the others. (The fake
    // records no request it refuses for its mailbox; the sender's lines name each one.)
    const asked = parsed(r.lines).filter(
      (l) => l.msg === 'graph sendMail not accepted' && defaults.includes(String(l.outboxId)),
    )
    expect(asked.length).toBeGreaterThan(0)
    expect(asked.length).toBeLessThan(ROWS / 2)
    console.log(
      `[mailbox] ${ROWS} rows from a refused MAIL_FROM: ${asked.length} sendMail requests to it, ` +
        `${waiting.filter((w) => w.last_error_code === 'mailbox_paused').length} given back for its pause without one`,
    )

    // Said loudly, once, by the variable that names it, never by its address.
    const errors = parsed(r.lines).filter((l) => l.level === 'error')
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({
      msg: 'sender mailbox refused by Graph: its rows wait',
      mailbox: 'MAIL_FROM',
      code: 'ErrorInvalidUser',
      httpStatus: 404,
    })
    expect(r.lines.filter((l) => l.includes(MAIL_FROM))).toEqual([])
    expect(r.transport.warning()).toContain('MAIL_FROM')
    expect(r.transport.warning()).toContain('ErrorInvalidUser')
    expect(r.transport.warning()).not.toContain(MAIL_FROM)
    expect(r.transport.senderMailboxRefused?.()).toBe(true)
    // Every line about the database's sends carries it.
    const graphLines = parsed(r.lines).filter(
      (l) =>
        String(l.msg).startsWith('graph sendMail') || String(l.msg).startsWith('mailbox paused'),
    )
    expect(
      graphLines.filter((l) => l.msg === 'mailbox paused after a provider throttle').length,
    ).toBeGreaterThan(0)
    expect(graphLines.filter((l) => l.db !== 'test')).toEqual([])

    // The mailbox is fixed; the pause and the rows' waits pass (database time).
    known.push(MAIL_FROM)
    await t.pool.query(`update mailer.mailbox_pacing set next_at = now()`)
    await t.pool.query(`update mailer.email_outbox set send_at = now() where status = 'pending'`)
    r.engine.drainer.wake()
    await pollUntil(async () => {
      const rows = await rowsOf(defaults)
      return rows.every((x) => x.status === 'sent') ? true : undefined
    }, 30_000)
    const sent = r.fake.accepted.filter((a) => a.mailbox === MAIL_FROM).map((a) => a.outboxId)
    expect(sent.sort()).toEqual([...defaults].sort())
    expect(r.transport.warning()).toBeNull()
    expect(r.transport.senderMailboxRefused?.()).toBe(false)
    const again = parsed(r.lines).filter((l) => l.msg === 'sender mailbox sends again')
    expect(again).toHaveLength(1)
    expect(again[0]).toMatchObject({ level: 'info', mailbox: 'MAIL_FROM' })
  })

  test('not enabled for Graph (404 MailboxNotEnabledForRESTAPI): its rows wait, a row from another such mailbox fails', async () => {
    const r = await startWorker({ disabledMailboxes: [MAIL_FROM, 'old@example.com'] })
    const defaults: string[] = []
    for (let i = 0; i < 5; i++) defaults.push(await enqueue(t))
    const old = await enqueue(t, {
      from: 'old@example.com',
      to: 'rcpt@example.com',
      subject: 'Hello',
      text: 'Hi',
    })
    await allTried([...defaults, old])
    expect(await rowsOf([old])).toEqual([
      { status: 'failed', attempts: 1, last_error_code: 'MailboxNotEnabledForRESTAPI' },
    ])
    const waiting = await rowsOf(defaults)
    expect(waiting.every((w) => w.status === 'pending' && w.attempts === 0)).toBe(true)
    expect(r.transport.warning()).toContain('MailboxNotEnabledForRESTAPI')
  })

  test('pause after pause, the waiting rows are the refusal’s one error line, not a line each at info', async () => {
    const r = await startWorker({ mailboxes: [OWN] })
    const defaults: string[] = []
    for (let i = 0; i < ROWS; i++) defaults.push(await enqueue(t))
    const CYCLES = 3
    for (let k = 1; k <= CYCLES; k++) {
      if (k > 1) {
        // The pause and the rows' waits pass (database time): the next rows probe the mailbox.
        await t.pool.query(`update mailer.mailbox_pacing set next_at = now()`)
        await t.pool.query(
          `update mailer.email_outbox set send_at = now(), last_error_code = null where status = 'pending'`,
        )
        r.engine.drainer.wake()
      }
      await allTried(defaults)
    }
    const lines = parsed(r.lines)
    const history = await t.pool.query(
      `select count(*)::int as n from mailer.email_attempts where outbox_id = any($1::bigint[])`,
      [defaults],
    )
    const info = lines.filter((l) => l.level === 'info' && l.msg === 'send will be retried')
    console.log(
      `[mailbox] ${ROWS} rows, ${CYCLES} pauses of a refused MAIL_FROM: ${info.length} 'send will be retried' lines at info, ` +
        `${history.rows[0].n} history rows`,
    )
    // A row sent back from the paused mailbox asked nobody: its line is debug. The row that asked
    // Graph and met the refusal keeps its line at info.
    expect(info.filter((l) => l.code === 'mailbox_paused')).toEqual([])
    expect(info.length).toBeGreaterThan(0)
    expect(info.length).toBeLessThan(ROWS)
    expect(lines.filter((l) => l.level === 'error')).toHaveLength(1)
    // A run of give-backs for the pause is recorded once, as a run of pacing turns or token waits
    // is: the row's columns say what held it last and when it is due.
    const repeated = await t.pool.query(
      `select count(*)::int as n from (
         select error_code, lag(error_code) over (partition by outbox_id order by id) as prev
           from mailer.email_attempts where outbox_id = any($1::bigint[])) h
        where error_code = 'mailbox_paused' and prev = 'mailbox_paused'`,
      [defaults],
    )
    expect(repeated.rows[0].n).toBe(0)
    expect(await rowsOf(defaults)).toSatisfy((rows) =>
      rows.every(
        (x: { status: string; attempts: number }) => x.status === 'pending' && x.attempts === 0,
      ),
    )
  })
})
