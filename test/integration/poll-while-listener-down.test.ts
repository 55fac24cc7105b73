// While its LISTEN session is away (reconnecting), a worker polls every second: no row waits for POLL_INTERVAL_SECONDS.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { closedPort } from '../support/closed-port.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, type TestEngine } from '../support/engine.ts'
import { settledFor } from '../support/events.ts'
import { startSilencingProxy } from '../support/silencing-proxy.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

// An hour: only a short poll while the listener is away can send the row within the bound below.
const hourly = { pollIntervalSeconds: 3600 }

/**
 * Two rows, the second enqueued once the first is sent: each sent within a bound generous for a
 * loaded machine (a short poll is 1 s). The second comes after any wake of the listener's: only a
 * poll finds it. 'still waiting' for a row not sent within the bound.
 */
async function sentInTurn(e: TestEngine): Promise<string[]> {
  const outcomes: string[] = []
  for (let i = 0; i < 2; i++) {
    const id = await enqueue(t)
    outcomes.push(
      await e.events.waitFor(settledFor(id, 'sent'), 10_000).then(
        () => 'sent',
        () => 'still waiting',
      ),
    )
  }
  return outcomes
}

test('a LISTEN session lost while the worker waits: the worker looks at once and polls until it listens again', async () => {
  const proxy = await startSilencingProxy(t.url)
  const e = createTestEngine(t, { config: hourly, listenUrl: proxy.url })
  try {
    await e.start()
    // The session's connection is closed and the proxy's port with it: every reconnect is refused.
    proxy.close()
    await e.events.waitFor((x) => x.type === 'listener' && x.state === 'reconnecting')
    expect(await sentInTurn(e)).toEqual(['sent', 'sent'])
    expect(e.listener.state()).toBe('reconnecting')
  } finally {
    await e.stop()
    proxy.close()
  }
})

test('a listener that never connects: the worker polls every second from its start', async () => {
  const e = createTestEngine(t, {
    config: hourly,
    listenUrl: `postgres://nobody@127.0.0.1:${await closedPort()}/none`,
  })
  try {
    e.listener.start()
    e.drainer.start()
    await e.events.waitFor((x) => x.type === 'listener' && x.state === 'reconnecting')
    expect(await sentInTurn(e)).toEqual(['sent', 'sent'])
  } finally {
    await e.stop()
  }
})
