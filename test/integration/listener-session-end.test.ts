// A LISTEN session the listener gives up (a stop, a failed check) ends on the server too: no backend outlives it.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { LISTENER_APPLICATION_NAME } from '../../src/outbox/listen-session.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { loneListener } from '../support/lone-listener.ts'
import { startSilencingProxy } from '../support/silencing-proxy.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()

const backendAlive = async (pid: number) =>
  (await t.pool.query('select 1 from pg_stat_activity where pid = $1', [pid])).rowCount === 1

const listenerBackends = async () =>
  (
    await t.pool.query<{ pid: number }>(
      'select pid from pg_stat_activity where datname = current_database() and application_name = $1',
      [LISTENER_APPLICATION_NAME],
    )
  ).rows.map((r) => r.pid)

function listenerOn(url: string, o: { shared?: boolean; checkIntervalMs?: number } = {}) {
  const handle = o.shared
    ? openDb({ name: 'test', url, log: silentLogger, shareListenSession: true })
    : null
  const { listener, events } = loneListener(url, {
    checkIntervalMs: o.checkIntervalMs ?? 600_000,
    checkTimeoutMs: 500,
    shared: handle?.listenSession ?? null,
  })
  return { listener, events, close: async () => handle?.close() }
}

for (const shared of [false, true]) {
  test(`a stopped listener's backend goes away (${shared ? 'shared' : 'own'} session)`, async () => {
    const { listener, events, close } = listenerOn(t.url, { shared })
    try {
      listener.start()
      await events.waitFor((e) => e.type === 'listener' && e.state === 'listening')
      const pid = listener.backendPid()!
      expect(await backendAlive(pid)).toBe(true)
      await listener.stop()
      await pollUntil(async () => ((await backendAlive(pid)) ? undefined : true), 20_000)
    } finally {
      await listener.stop()
      await close()
    }
  })
}

for (const shared of [false, true]) {
  test(`a listener that finds its session silent closes it: the backend goes away (${shared ? 'shared' : 'own'} session)`, async () => {
    const proxy = await startSilencingProxy(t.url)
    const { listener, events, close } = listenerOn(proxy.url, { shared, checkIntervalMs: 200 })
    try {
      listener.start()
      await events.waitFor((e) => e.type === 'listener' && e.state === 'listening')
      // Its own backend by pid: a count by name also meets the probe's second session (or the last
      // test's), whose backend may still be exiting after its client closed.
      const pid = listener.backendPid()!
      expect(await backendAlive(pid)).toBe(true)
      expect(await listenerBackends()).toContain(pid)
      proxy.silence()
      await events.waitFor((e) => e.type === 'listener' && e.state === 'reconnecting')
      await pollUntil(async () => ((await backendAlive(pid)) ? undefined : true), 20_000)
    } finally {
      await listener.stop()
      await close()
      proxy.close()
    }
  })
}

// A stop while the session connects drops it right after the driver wrote its startup packet.
test('a listener stopped while its session connects closes that connection', async () => {
  const proxy = await startSilencingProxy(t.url)
  // The startup packet names the session: the server never answers it.
  proxy.silenceOnceAt(LISTENER_APPLICATION_NAME)
  const { listener } = listenerOn(proxy.url)
  try {
    listener.start()
    await pollUntil(async () => (proxy.silent() === 1 ? true : undefined))
    await listener.stop()
    await pollUntil(async () => (proxy.open() === 0 ? true : undefined), 20_000)
  } finally {
    await listener.stop()
    proxy.close()
  }
})
