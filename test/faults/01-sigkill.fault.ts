// Scenario 1: kill -9 mid-drain and restart: every row sent; duplicates zero with mailbox lookup, bounded without.
import { afterAll, expect } from 'bun:test'
import { allSent, cleanupAll, report, seconds, spawnMailer, statusCounts } from './harness.ts'
import { test } from './kept-evidence.ts'
import { killedMidDrain } from './killed-mid-drain.ts'

afterAll(cleanupAll)

const ROWS = 1200

// Both variants run side by side (own database, own fake): the wait is Graph latency, not CPU.
test('SIGKILL mid-drain: every row sent after restart, with and without mailbox lookup', async () => {
  await Promise.all([variant(true), variant(false)])
}, 120_000)

async function variant(lookup: boolean) {
  {
    const { db, graph, ids, env } = await killedMidDrain({
      database: lookup ? 'kill_lookup' : 'kill_resend',
      mailer: `kill-1-${lookup}`,
      rows: ROWS,
      lookup,
      acceptedBeforeKill: 300,
    })
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
