// The LISTEN probe's second session names itself apart from the LISTEN session: status counts LISTEN sessions, not probes.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { workerPresence } from '../../src/outbox/worker-presence.ts'
import { boundedLatches } from '../support/bounded-latches.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { hookedSession } from '../support/hooked-session.ts'
import { loneListener } from '../support/lone-listener.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()

/** A wait's bound, past the test's own (a poll of 10 s while the setup is held), below its timeout. */
const LATCH_MS = 20_000

const sessionsNamed = async () =>
  (
    await t.pool.query<{ name: string; n: number }>(
      `select application_name as name, count(*)::int as n from pg_stat_activity
        where datname = current_database() and application_name like 'outbox-mailer:listen%'
        group by application_name order by application_name`,
    )
  ).rows

test("while a listener's probe holds its second session open, status counts one LISTEN session, and pg_stat_activity names the probe's apart", async () => {
  const h = openDb({ name: 'probe', url: t.url, log: silentLogger, shareListenSession: true })
  // The setup is held once the probe's own channel is listened on: the probe's second session,
  // opened as the LISTEN session connected, is then connected or connecting.
  const latches = boundedLatches(LATCH_MS)
  const release = latches.make('the probe’s setup released by the test')
  const held = latches.make('the probe’s own channel listened on')
  const session = hookedSession(h.listenSession!, async ({ text, run }) => {
    const answer = await run()
    if (text.startsWith('listen mailer_outbox_probe_')) {
      held.resolve()
      await release.wait()
    }
    return answer
  })
  const { listener, events } = loneListener(t.url, { shared: session, checkTimeoutMs: 10_000 })
  try {
    listener.start()
    await held.wait()
    // Both sessions in pg_stat_activity, by whatever names they give.
    const named = await pollUntil(async () => {
      const rows = await sessionsNamed()
      return rows.reduce((n, r) => n + r.n, 0) === 2 ? rows : undefined
    })
    const presence = await workerPresence(t.db, { liveSeconds: 60, overdueSeconds: 60 })
    expect(presence.listenerSessions).toBe(1)
    expect(named).toEqual([
      { name: 'outbox-mailer:listen-probe', n: 1 },
      { name: 'outbox-mailer:listener', n: 1 },
    ])
    release.resolve()
    await events.waitFor((e) => e.type === 'listener' && e.state === 'listening', 20_000)
  } finally {
    release.resolve()
    await listener.stop()
    await h.close()
  }
})
