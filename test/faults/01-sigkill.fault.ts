// Scenario 1: kill -9 mid-drain and restart: every row sent; duplicates zero with mailbox lookup, bounded without.
import { afterAll, expect, setDefaultTimeout } from 'bun:test'
import { LOOKUP_GRACE_SECONDS, LOOKUP_TOO_EARLY_CODE } from '../../src/outbox/lookup-grace.ts'
import {
  allSent,
  cleanupAll,
  type Database,
  report,
  seconds,
  spawnMailer,
  statusCounts,
} from './harness.ts'
import { test } from './kept-evidence.ts'
import { killedMidDrain, killedSessionsEnded } from './killed-mid-drain.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). CI's --timeout
// (.ci/run): the bound of the hooks (cleanupAll); each scenario passes its own.
setDefaultTimeout(180_000)
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
    const killedAtWall = Date.now()
    await killedSessionsEnded(db)
    // The dead worker's state, frozen: sends started and never recorded are the only possible duplicates.
    const [frozen] = await db.q<{ in_flight: number; sent: number; now_ms: number }>(
      `select count(*) filter (where status = 'sending' and send_started_at is not null)::int as in_flight,
              count(*) filter (where status = 'sent')::int as sent,
              (extract(epoch from now()) * 1000)::float8 as now_ms
         from mailer.email_outbox`,
    )
    const acceptedAtKill = new Set(graph.fake.accepted.map((a) => a.outboxId)).size
    const deadlineAtKill = await deadlines(db)

    const second = await spawnMailer(`kill-2-${lookup}`, env)
    await allSent(db, ids, 60_000, [second])
    const recoverMs = performance.now() - killedAt

    const duplicates = graph.duplicates(ids)
    const waits = lookup ? await graceWaits(db, frozen!.now_ms, deadlineAtKill) : null
    report(`1 sigkill (${lookup ? 'lookup' : 'resend'})`, {
      rows: ROWS,
      sent: (await statusCounts(db)).sent ?? 0,
      acceptedAtKill,
      sentInDbAtKill: frozen!.sent,
      inFlightAtKill: frozen!.in_flight,
      duplicates,
      recover: seconds(recoverMs),
      ...(waits
        ? {
            lookupTooEarly: waits.ids.length,
            ...(waits.ids.length > 0
              ? { graceOut: seconds(waits.graceOutMs), recoverRest: seconds(waits.restMs) }
              : {}),
          }
        : {}),
    })
    if (waits) {
      // Waiting out the grace is right only for a send Graph may still file: one the killed worker
      // had started (its start recorded) and whose request had not reached Graph when the kill
      // came. A send Graph had taken is found by the first lookup.
      expect(waits.ids.filter((id) => !deadlineAtKill.has(id))).toEqual([])
      const reachedGraph = new Set(
        graph.fake.requests
          .filter((r) => r.kind === 'sendMail' && r.at <= killedAtWall)
          .map((r) => r.outboxId),
      )
      expect(waits.ids.filter((id) => reachedGraph.has(id))).toEqual([])
    }
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

/** The in-flight sends' deadlines (epoch ms, database time) at the kill, by row id. */
async function deadlines(db: Database): Promise<Map<string, number>> {
  const rows = await db.q<{ id: string; deadline_ms: number }>(
    `select id::text, (extract(epoch from send_deadline_at) * 1000)::float8 as deadline_ms
       from mailer.email_outbox where status = 'sending' and send_deadline_at is not null`,
  )
  return new Map(rows.map((r) => [r.id, r.deadline_ms]))
}

/**
 * The rows whose lookup came before Graph's lookup grace was out (LOOKUP_TOO_EARLY_CODE) and so
 * waited, uncounted, to ask again: with FAST's 5 s lease and 2 s request timeout a row's grace (its
 * send's deadline, its start plus 2 s, plus LOOKUP_GRACE_SECONDS) runs out about 32 s after the
 * kill, where the other rows are sent within about 12. `graceOutMs`: when the last of those graces
 * ran out, `restMs`: when the last other row was sent, both after the kill, in database time.
 */
async function graceWaits(db: Database, killedAtMs: number, deadlineAtKill: Map<string, number>) {
  const waited = await db.q<{ id: string }>(
    `select distinct outbox_id::text as id from mailer.email_attempts where error_code = $1`,
    [LOOKUP_TOO_EARLY_CODE],
  )
  const ids = waited.map((w) => w.id)
  const [rest] = await db.q<{ last_ms: number | null }>(
    `select (extract(epoch from max(finished_at)) * 1000)::float8 as last_ms
       from mailer.email_attempts where outcome = 'sent' and not (outbox_id = any($1::bigint[]))`,
    [ids],
  )
  const graceOut = Math.max(
    ...ids.map((id) => (deadlineAtKill.get(id) ?? Number.NaN) + LOOKUP_GRACE_SECONDS * 1000),
  )
  return {
    ids,
    graceOutMs: graceOut - killedAtMs,
    restMs: (rest!.last_ms ?? killedAtMs) - killedAtMs,
  }
}
