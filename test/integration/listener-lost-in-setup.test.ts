// A LISTEN session that ends while it is set up (its probe awaiting the notification) is replaced at once, not after the check's bound.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { openDb } from '../../src/db/open.ts'
import type { SharedSession } from '../../src/db/shared-session.ts'
import { silentLogger } from '../../src/log.ts'
import { boundedLatches } from '../support/bounded-latches.ts'
import { useTestDb } from '../support/db.ts'
import { hookedSession } from '../support/hooked-session.ts'
import { loneListener } from '../support/lone-listener.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()

/**
 * The shared session's clients, the first of which has its backend terminated right after the
 * probe's LISTEN is answered: the probe's notification then never comes (round 48's fault 02, whose
 * second pg_terminate_backend met a session awaiting it). `ended` resolves once that client ended.
 */
function endedAtTheProbe(real: SharedSession) {
  // Bounded and named: a cut that never comes fails as that, not as the test's timeout.
  const ended = boundedLatches(20_000).make('the LISTEN session’s client ended at the probe')
  let cut = false
  const session = hookedSession(real, async ({ client, text, run }) => {
    const answer = await run()
    if (!cut && text.startsWith('listen mailer_outbox_probe_')) {
      cut = true
      const gone = new Promise((resolve) => client.once('end', resolve))
      const pid = (client as unknown as { processID: number }).processID
      await t.pool.query('select pg_terminate_backend($1)', [pid])
      await gone
      ended.resolve()
    }
    return answer
  })
  return { session, ended }
}

test('a LISTEN session ended while its probe awaits the notification fails its setup at once, with its own error', async () => {
  const h = openDb({ name: 'cut', url: t.url, log: silentLogger, shareListenSession: true })
  const { session, ended } = endedAtTheProbe(h.listenSession!)
  // The production bound: a setup that waited it out left new rows unsent for 5 s.
  const { listener, events } = loneListener(t.url, { shared: session, checkTimeoutMs: 5_000 })
  try {
    listener.start()
    await ended.wait()
    await events.waitFor((e) => e.type === 'listener' && e.state === 'reconnecting', 20_000)
    const failure = listener.connectFailure()?.err as Error | undefined
    expect(failure?.message).toBe('terminating connection due to administrator command')
    await events.waitFor((e) => e.type === 'listener' && e.state === 'listening', 20_000)
    expect(events.events.filter((e) => e.type === 'listener').map((e) => e.state)).toEqual([
      'connecting',
      'reconnecting',
      'listening',
    ])
  } finally {
    await listener.stop()
    await h.close()
  }
})
