// A row whose send was interrupted and whose next try falls after its expiresAt, with lookups on: looked up before it fails expired, sent if Graph has it.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { createLogger } from '../../src/log.ts'
import { useTestDb } from '../support/db.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { attemptsOf, enqueue, rowOf } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { type FakeGraph, type GraphFault, startFakeGraph } from '../support/fake-graph.ts'
import { graphWorker } from '../support/graph-worker.ts'
import { lookupWaitOf, WAITING_PAST_EXPIRY } from '../support/lookup-wait.ts'

setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const { engines, closing } = endedAfterEach()

/**
 * Long enough that, on a loaded machine, the row's one send has started and its 2 s deadline and
 * 1 s grace are out well before it (a lookup within the grace would call "not found" unknown, not
 * unsent). The row is enqueued once the worker listens, so its send starts within one claim (under
 * 0.1 s here); the wait for the expiresAt is what each test is about, its length is not.
 */
const EXPIRES_IN_MS = 10_000

/**
 * A row expiring in EXPIRES_IN_MS whose send meets `fault` (a 2 s deadline), drained by a worker
 * with lookups on whose retries come a minute later (so after that expiresAt), to its final state.
 */
async function drained(fault: GraphFault, fake?: FakeGraph) {
  const graph = fake ?? (await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000 }))
  closing.push(() => graph.stop())
  graph.setFaults({ sendMail: [fault] })
  const lines: { outboxId?: string; attempt?: number; outcome?: string }[] = []
  const engine = graphWorker(t, graph, {
    workerId: 'w',
    mailFrom: 'sender@example.com',
    graceSeconds: 1,
    retryBaseSeconds: 60,
    log: createLogger('debug', (line) => lines.push(JSON.parse(line))),
  })
  engines.push(engine)
  await engine.start()
  const id = await enqueue(t, undefined, {
    expiresAt: new Date(Date.now() + EXPIRES_IN_MS).toISOString(),
  })
  // Bounded for a loaded machine: the expiresAt, then one claim and lookup. Every 250 ms: the
  // state waited for is final, and most of the wait is the expiresAt's 10 s.
  const row = await pollUntil(
    async () => {
      const r = await rowOf(t, id)
      return ['sent', 'failed', 'cancelled'].includes(r.status) ? r : undefined
    },
    45_000,
    250,
  )
  const history = await attemptsOf(t, id, 'attempt, outcome, error_code')
  const sends = graph.requests.filter((q) => q.kind === 'sendMail').length
  const accepted = graph.accepted.filter((a) => a.outboxId === id).length
  // The worker's line of each recorded outcome (lease-outcome.ts), with the attempt it names.
  const logged = lines
    .filter((l) => l.outboxId === id && l.outcome !== undefined)
    .map(({ attempt, outcome }) => ({ attempt, outcome }))
  return { row, history, sends, accepted, logged }
}

/** The worker's lines name each outcome's attempt as its history entry numbers it. */
const loggedAsRecorded = (h: { attempt: number; outcome: string }[]) =>
  h.map(({ attempt, outcome }) => ({ attempt, outcome }))

/** What a final row says of its send: its status, code, error, and whether its mark is kept. */
const ending = (row: Record<string, unknown>) => ({
  status: row.status,
  code: row.last_error_code,
  error: row.last_error,
  marked: row.send_started_at !== null,
})

test('a send Graph accepted and never answered, whose retry would come after the expiresAt: looked up, sent, never sent again', async () => {
  const { row, history, sends, accepted, logged } = await drained('accept_then_hang')
  expect({ sends, accepted }).toEqual({ sends: 1, accepted: 1 })
  expect({ status: row.status, code: row.last_error_code, error: row.last_error }).toEqual({
    status: 'sent',
    code: null,
    error: null,
  })
  // The lookup is no attempt (lease.ts lookupOnly): attempt 1's send went, and is numbered so.
  expect(row.attempts).toBe(1)
  expect(history).toEqual([
    { attempt: 1, outcome: 'retry', error_code: 'timeout' },
    { attempt: 1, outcome: 'sent', error_code: null },
  ])
  expect(logged).toEqual(loggedAsRecorded(history))
})

test('a send that timed out and never reached Graph, whose retry would come after the expiresAt: looked up, failed expired as not sent, its mark cleared', async () => {
  const { row, history, sends, accepted } = await drained('hang')
  expect({ sends, accepted }).toEqual({ sends: 1, accepted: 0 })
  expect(ending(row)).toEqual({
    status: 'failed',
    code: 'expired',
    error: 'not sent before expiresAt',
    marked: false,
  })
  expect(row.attempts).toBe(1)
  expect(history).toEqual([
    { attempt: 1, outcome: 'retry', error_code: 'timeout' },
    { attempt: 1, outcome: 'expired', error_code: 'expired' },
  ])
})

test('a send Graph accepted, whose lookup after the expiresAt Graph refuses (no Mail.Read): failed expired naming the interrupted send, its mark kept', async () => {
  const fake = await startFakeGraph({
    clientSecret: 'right',
    concurrencyLimit: 1000,
    mailRead: false,
  })
  const { row, history, sends, accepted, logged } = await drained('accept_then_hang', fake)
  expect({ sends, accepted }).toEqual({ sends: 1, accepted: 1 })
  expect(row.attempts).toBe(1)
  expect(history.at(-1)).toEqual({ attempt: 1, outcome: 'expired', error_code: 'expired' })
  expect(logged).toEqual(loggedAsRecorded(history))
  expect(ending(row)).toEqual({
    status: 'failed',
    code: 'expired',
    error: 'expiresAt passed; an interrupted send may have delivered it',
    marked: true,
  })
  // Looked up (and refused), never sent again.
  expect(fake.requests.some((q) => q.kind === 'lookup')).toBe(true)
})

test('a send Graph accepted and filed late, looked up at the expiresAt within the grace of its deadline: waits past the expiresAt, its mark kept, looks again once the grace is out, found, sent, never sent again', async () => {
  const graph = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000 })
  closing.push(() => graph.stop())
  // Accepted, never answered, and not in the mailbox until the test files it.
  graph.setFaults({ sendMail: ['accept_then_hang'], fileLate: true })
  // The grace (from the send's deadline, 2 s after it starts) outlasts the expiresAt by 9 s at
  // least: the lookup at the expiresAt comes within it on a loaded machine.
  const engine = graphWorker(t, graph, {
    workerId: 'w',
    mailFrom: 'sender@example.com',
    graceSeconds: 22,
    retryBaseSeconds: 60,
  })
  engines.push(engine)
  const id = await enqueue(t, undefined, { expiresAt: new Date(Date.now() + 15_000).toISOString() })
  await engine.start()
  // Its settlement after its send's timeout: the lookup's, at the expiresAt.
  const looked = await engine.events.waitFor(
    (e) => e.type === 'settled' && e.id === id && e.code !== 'timeout',
    30_000,
  )
  expect(looked).toMatchObject({ outcome: 'throttled', code: 'lookup_too_early' })
  expect(await lookupWaitOf(t, id)).toEqual(WAITING_PAST_EXPIRY)
  expect(graph.fileLateMessages()).toBe(1)
  // Bounded for a loaded machine: the rest of the grace, then one claim and lookup.
  await engine.events.waitFor(settledFor(id, 'sent'), 40_000)
  expect(ending(await rowOf(t, id))).toEqual({
    status: 'sent',
    code: null,
    error: null,
    marked: false,
  })
  expect(graph.requests.filter((q) => q.kind === 'sendMail')).toHaveLength(1)
  expect(graph.accepted.filter((a) => a.outboxId === id)).toHaveLength(1)
  expect(await attemptsOf(t, id, 'attempt, outcome, error_code')).toEqual([
    { attempt: 1, outcome: 'retry', error_code: 'timeout' },
    { attempt: 1, outcome: 'throttled', error_code: 'lookup_too_early' },
    { attempt: 1, outcome: 'sent', error_code: null },
  ])
})
