// A stop while the LISTEN session's liveness lock take is unanswered ends the session there: never listening, no wake, the lock not kept.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { openDb } from '../../src/db/open.ts'
import { createLogger } from '../../src/log.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { hookedSession } from '../support/hooked-session.ts'
import { loneListener } from '../support/lone-listener.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

test('a stop while the liveness lock take is unanswered ends the session there: never listening, no wake, lock released', async () => {
  const lines: { level: string; msg: string }[] = []
  const log = createLogger('info', (l) => lines.push(JSON.parse(l)))
  const h = openDb({ name: 'lock-stop', url: t.url, log, shareListenSession: true })
  cleanups.push(() => h.close())
  const asked = Promise.withResolvers<void>()
  const answer = Promise.withResolvers<void>()
  const session = hookedSession(h.listenSession!, async ({ text, run }) => {
    if (!text.includes('pg_try_advisory_lock')) return run()
    // The server slow to answer the take (a database under load): held until the stop has begun.
    asked.resolve()
    await answer.promise
    return run()
  })
  let wakes = 0
  const { listener, events } = loneListener(t.url, {
    holder: 'lock-stopped',
    shared: session,
    log,
    wake: () => {
      wakes++
    },
  })
  listener.start()
  await asked.promise
  const stopped = listener.stop()
  answer.resolve()
  await stopped
  // The session's end releases the lock with it (the server's, once the client is gone): bounded.
  const lockHeldAfter = await pollUntil(async () => {
    const { rows } = await t.pool.query<{ n: number }>(
      `select count(*)::int as n from pg_locks
        where locktype = 'advisory' and granted
          and ((classid::int8 << 32) | objid::int8) = hashtextextended('lock-stopped', 0)`,
    )
    return rows[0]!.n === 0 ? 0 : undefined
  }, 10_000)
  expect({
    listening: events.events.some((e) => e.type === 'listener' && e.state === 'listening'),
    listeningLogged: lines.some((l) => l.msg === 'listening for outbox notifications'),
    wakes,
    lockHeldAfter,
    state: listener.state(),
  }).toEqual({
    listening: false,
    listeningLogged: false,
    wakes: 0,
    lockHeldAfter: 0,
    state: 'stopped',
  })
})
