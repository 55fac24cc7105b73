// Scenario 1: kill -9 mid-drain and restart: every row sent; duplicates zero with mailbox lookup, bounded without.
import { afterAll, expect, test } from 'bun:test'
import {
  allSent,
  cleanupAll,
  enqueue,
  FAST,
  report,
  seconds,
  sharedDatabase,
  spawnMailer,
  startGraph,
  statusCounts,
  within,
} from './harness.ts'

afterAll(cleanupAll)

const ROWS = 1200

// Both variants run side by side (own database, own fake): the wait is Graph latency, not CPU.
test('SIGKILL mid-drain: every row sent after restart, with and without mailbox lookup', async () => {
  await Promise.all([variant(true), variant(false)])
}, 120_000)

async function variant(lookup: boolean) {
  {
    const db = await sharedDatabase(lookup ? 'kill_lookup' : 'kill_resend')
    const graph = await startGraph({ mailRead: lookup, concurrencyLimit: 40 })
    graph.fake.setFaults({ latencyMs: 200 })
    const ids = await enqueue(db, ROWS)
    const env = {
      DATABASE_URL: db.url,
      ...graph.env,
      ...FAST,
      WORKER_CONCURRENCY: '40',
      GRAPH_MAX_CONCURRENCY: '32',
      GRAPH_MAILBOX_LOOKUP: String(lookup),
      AMBIGUOUS_SEND_POLICY: 'resend',
    }
    const first = await spawnMailer(`kill-1-${lookup}`, env)
    await within(
      '300 messages accepted and sends in flight before the kill',
      30_000,
      () =>
        new Set(graph.fake.accepted.map((a) => a.outboxId)).size >= 300 &&
        graph.fake.inFlight() >= 8
          ? true
          : undefined,
      { mailers: [first], every: 5 },
    )
    first.proc.kill('SIGKILL')
    expect(await first.exited).not.toBe(0)
    const killedAt = performance.now()
    // The dead worker's state, frozen: sends started and never recorded are the only possible duplicates.
    const [frozen] = await db.q<{ in_flight: number; sent: number }>(
      `select count(*) filter (where status = 'sending' and send_started_at is not null)::int as in_flight,
              count(*) filter (where status = 'sent')::int as sent
         from mailer.email_outbox`,
    )
    const acceptedAtKill = new Set(graph.fake.accepted.map((a) => a.outboxId)).size

    const second = await spawnMailer(`kill-2-${lookup}`, env)
    await allSent(db, ids, 60_000, [second])
    const recoverMs = performance.now() - killedAt

    const duplicates = graph.duplicates(ids)
    report(`1 sigkill (${lookup ? 'lookup' : 'resend'})`, {
      rows: ROWS,
      sent: (await statusCounts(db)).sent ?? 0,
      acceptedAtKill,
      sentInDbAtKill: frozen!.sent,
      inFlightAtKill: frozen!.in_flight,
      duplicates,
      recover: seconds(recoverMs),
    })
    expect(graph.missing(ids)).toEqual([])
    expect(await statusCounts(db)).toEqual({ sent: ROWS })
    if (lookup) expect(duplicates).toBe(0)
    else expect(duplicates).toBeLessThanOrEqual(frozen!.in_flight)
    // The kill must actually have hit sends in flight, or this scenario proved nothing.
    expect(frozen!.in_flight).toBeGreaterThan(0)
    second.proc.kill('SIGTERM')
    expect(await second.exited).toBe(0)
  }
}
