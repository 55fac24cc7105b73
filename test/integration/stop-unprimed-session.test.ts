// A shared LISTEN session that (re)connects once the process is stopping is not primed: the stop's statements take it without waiting out a pickup that will not come.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { loneListener } from '../support/lone-listener.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()

test('a shared LISTEN session that reconnects during a stop is not primed; one that connects before is', async () => {
  const handle = openDb({ name: 'test', url: t.url, log: silentLogger, shareListenSession: true })
  let primes = 0
  const { listener, listening } = loneListener(t.url, {
    shared: handle.listenSession,
    prime: async () => {
      primes += 1
    },
  })
  try {
    await listening()
    // A statement of the route waits out the owner's turn, the prime's: it has run once this answers.
    await handle.statements.query('select 1')
    expect(primes).toBe(1)
    handle.stopBegan()
    const pid = listener.backendPid()
    await t.pool.query('select pg_terminate_backend($1)', [pid])
    await pollUntil(async () => {
      const now = listener.backendPid()
      return listener.state() === 'listening' && now !== null && now !== pid ? true : undefined
    })
    // Primed, the new session would hold this statement (a stop's) behind a claim, a slot take and
    // a last check for no row: several round trips when the database is slow.
    await handle.statements.query('select 1')
    expect({ primes, on: handle.statements.next() }).toEqual({ primes: 1, on: 'session' })
  } finally {
    await listener.stop()
    await handle.close()
  }
})
