// One database state, four readers of "this mailbox is paused now": status's PAUSED count, the /metrics gauge, /v1/stats and the engine's pause read agree.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { createMetrics } from '../../src/api/metrics.ts'
import { throttleHoldsMs } from '../../src/outbox/kept-turn-wait.ts'
import { mailboxPausedFor } from '../../src/outbox/mailbox-pause.ts'
import { mailboxKey } from '../../src/outbox/send-gate.ts'
import { fakeHealth } from '../api/support/fake-health.ts'
import { appOnDefault } from '../api/support/harness.ts'
import { bearer, token } from '../api/support/tokens.ts'
import { useTestDb } from '../support/db.ts'
import { defaultStatus } from '../support/default-status.ts'
import { pauseRowsOfEveryKind } from '../support/pause-rows-of-every-kind.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

async function readers() {
  const status = await defaultStatus(t)
  const metrics = createMetrics({
    databases: [{ name: 'default', db: t.db, statements: t.statements }],
    health: fakeHealth(['default']),
  })
  const gauge = /^outbox_mailboxes_paused\{db="default"\} (\S+)$/m.exec(await metrics.render())
  // The answer as the app gives it: send() would first build a checker of the app's whole document
  // (4–14 s of a loaded machine's 30 s, per app); /v1/stats' conformance is held-back-gauges'.
  const res = await appOnDefault(t).app.request('/v1/stats', { headers: bearer(await token()) })
  expect(res.status).toBe(200)
  const stats = (await res.json()) as { databases: { pausedMailboxes: number }[] }
  const keys = await t.pool.query<{ k: string }>(
    `select mailbox as k from mailer.mailbox_pacing
      where mailbox not like 'queue %' and mailbox <> 'pacing rate'`,
  )
  let engine = 0
  for (const { k } of keys.rows) {
    if (throttleHoldsMs(await mailboxPausedFor(t.db, { mailbox: k })) > 0) engine += 1
  }
  return {
    counts: {
      status: status.pausedMailboxes?.count,
      gauge: Number(gauge?.[1]),
      stats: stats.databases[0]?.pausedMailboxes,
      engine,
    },
    longestSeconds: status.pausedMailboxes?.longestSeconds,
  }
}

test('a pause shorter than a pacing interval, a throttle within a turn, an owed probe, a pause just ended, older and hand-written rows: every reader counts the same mailboxes', async () => {
  // The rate every worker paces by: one a minute.
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval)
     values ('pacing rate', now(), interval '60 seconds')`,
  )
  await pauseRowsOfEveryKind(t)
  const k = mailboxKey
  const all = await readers()
  expect(all.counts).toEqual({ status: 5, gauge: 5, stats: 5, engine: 5 })
  expect(all.longestSeconds).toBeNull()

  // The pause by hand lifted (README: next_at set to now()): the longest is the 10 minutes'.
  await t.pool.query(`update mailer.mailbox_pacing set next_at = now() where mailbox = $1`, [
    k('by-hand@example.com'),
  ])
  const lifted = await readers()
  expect(lifted.counts).toEqual({ status: 4, gauge: 4, stats: 4, engine: 4 })
  expect(lifted.longestSeconds).toBeGreaterThan(500)
})
