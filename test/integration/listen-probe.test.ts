// The LISTEN probe (a notification from a second session) must not cost a worker that may hold one connection its LISTEN.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { type AddressInfo, createServer, type Socket } from 'node:net'
import pg from 'pg'
import { hearsOtherSessions } from '../../src/db/listen-probe.ts'
import { openProbeSession, type ProbeSession } from '../../src/db/probe-session.ts'
import { boundedLatches } from '../support/bounded-latches.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { startHoldingProxy } from '../support/holding-proxy.ts'
import { loneListener } from '../support/lone-listener.ts'
import { startSilencingProxy } from '../support/silencing-proxy.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const role = `outbox_one_${process.pid}`
const password = crypto.randomUUID()
let t: TestDb
beforeAll(async () => {
  t = await createTestDb()
  await t.createRole(role, `login connection limit 1 password '${password}'`)
})
afterAll(async () => {
  await t.drop()
})

test('a role allowed one connection still listens: the probe, unable to open a second session, trusts the first', async () => {
  const url = new URL(t.url)
  url.username = role
  url.password = password
  const { listener, listening } = loneListener(url.toString())
  try {
    await listening(10_000)
    expect(listener.state()).toBe('listening')
  } finally {
    await listener.stop()
  }
})

// A new server session is the longest wait of a LISTEN session's setup: the probe's second session
// must connect while the first LISTENs and is checked, not after (a start waited for both in turn).
test("the probe's second session connects while the LISTEN session sets up, not after it", async () => {
  const proxy = await startHoldingProxy(t.url)
  // The LISTEN is held until a second session reaches the server: only one opened meanwhile frees it.
  proxy.holdOnceAt('listen mailer_outbox\0')
  const { listener, events, listening } = loneListener(proxy.url, {
    // Longer than the wait below: a LISTEN answered only after a reconnect would fail it.
    checkTimeoutMs: 60_000,
  })
  try {
    await listening(10_000)
    expect(proxy.released()).toBe(true)
    expect(events.events.filter((e) => e.type === 'listener').map((e) => e.state)).toEqual([
      'connecting',
      'listening',
    ])
  } finally {
    await listener.stop()
    proxy.close()
  }
})

// A stop that comes while the listener's probe opens its second session (a failed start's may,
// under load) must not leave that session to connect after it: serve's stop keeps no session open.
test('a probe stopped while it runs drops the second session still connecting, and opens none after', async () => {
  // The second session goes to a server that takes the connection and never answers.
  const opened: Socket[] = []
  let closed = 0
  const silent = createServer((s) => {
    opened.push(s)
    s.on('close', () => closed++)
    s.on('error', () => {})
  })
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const url = `postgres://nobody@127.0.0.1:${(silent.address() as AddressInfo).port}/none`
  const listening = new pg.Client({ connectionString: t.url })
  await listening.connect()
  const stop = new AbortController()
  const probe = (signal: AbortSignal) =>
    hearsOtherSessions(listening, {
      url,
      backendPid: (listening as unknown as { processID: number }).processID,
      applicationName: 'outbox-mailer:probe-test',
      // Long: only the stop may end the connect.
      timeoutMs: 60_000,
      signal,
    }).catch(() => null)
  try {
    const running = probe(stop.signal)
    await pollUntil(async () => (opened.length === 1 ? true : undefined))
    stop.abort()
    // Dropped at once: the server that never answers sees the connection closed.
    await pollUntil(async () => (closed === 1 ? true : undefined))
    await running
    // Asked after the stop, the probe opens none.
    await probe(stop.signal)
    expect(opened).toHaveLength(1)
  } finally {
    for (const s of opened) s.destroy()
    await listening.end()
    silent.close()
  }
})

// A LISTEN session that goes silent while it is set up (a half-open socket) must be given up and
// reconnected within the check's bound, not waited on for good: its LISTEN, and the probe's
// statements, which run on the session they test.
for (const [at, text] of [
  ['its LISTEN', 'listen mailer_outbox\0'],
  ['the probe', 'listen mailer_outbox_probe_'],
] as const) {
  test(`a LISTEN session that goes silent at ${at} is reconnected, not waited on`, async () => {
    const proxy = await startSilencingProxy(t.url)
    // The first session's statement is never answered; the reconnect's is.
    proxy.silenceOnceAt(text)
    const { listener, listening } = loneListener(proxy.url, { checkTimeoutMs: 500 })
    try {
      await listening(10_000)
    } finally {
      await listener.stop()
      proxy.close()
    }
  })
}

// Behind a transaction pooler two workers' probes may run on the same server session, so name the
// same backend pid: one must not take the other's notification for its own.
test("a notification on another probe's channel of the same backend pid is not the probe's own", async () => {
  const elsewhere = await createTestDb()
  const listening = new pg.Client({ connectionString: t.url })
  const neighbour = new pg.Client({ connectionString: t.url })
  await listening.connect()
  await neighbour.connect()
  const pid = (listening as unknown as { processID: number }).processID
  let probing = true
  // The neighbour's probe, as the probe named its channel before: it notifies until ours is done.
  const notifying = (async () => {
    while (probing) {
      await neighbour.query('select pg_notify($1, $2)', [`mailer_outbox_probe_${pid}`, ''])
    }
  })()
  try {
    const heard = await hearsOtherSessions(listening, {
      // Its own notification goes to another database: this session cannot hear it.
      url: elsewhere.url,
      backendPid: pid,
      applicationName: 'outbox-mailer:probe-test',
      timeoutMs: 500,
    })
    expect(heard).toBe(false)
  } finally {
    probing = false
    await notifying
    await listening.end()
    await neighbour.end()
    await elsewhere.drop()
  }
})

test("the verdict waits for no end of a second session the caller opened (the listener's start): the end is asked, and its wait is the caller's", async () => {
  // The end is the server's goodbye and a backend's exit: under load tens of ms the listener's
  // start waited for before it listened, while the notification had come already.
  const listening = new pg.Client({ connectionString: t.url })
  await listening.connect()
  const pid = (listening as unknown as { processID: number }).processID
  const own = { url: t.url, applicationName: 'outbox-mailer:probe-test', timeoutMs: 5_000 }
  const real = openProbeSession(own)
  // Bounded below the test's 10 s, past the verdict's own bound (5 s), which ends the race first.
  const endAsked = boundedLatches(8_000).make('the probe session’s end asked')
  const session: ProbeSession = {
    notify: (channel) => real.notify(channel),
    // A goodbye that never comes.
    end: () => {
      endAsked.resolve()
      return new Promise<void>(() => {})
    },
  }
  try {
    const verdict = hearsOtherSessions(listening, { ...own, backendPid: pid, session })
    const first = await Promise.race([verdict, endAsked.wait().then(() => 'end asked' as const)])
    // The end is asked once the notification is sent, before the verdict; the verdict follows.
    expect({ first, heard: await verdict }).toEqual({ first: 'end asked', heard: true })
  } finally {
    await real.end()
    await listening.end()
  }
}, 10_000)
