// A SIGTERM while every database answer takes seconds: the sends Graph accepted are recorded as sent before the exit, in one statement on connections already open, and the exit says whether any was not.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { compiledBinary } from '../support/binary.ts'
import { generateTestCertificate, type TestCertificate } from '../support/fake-graph.ts'
import { SENDS_AT_SIGNAL, stopSaid, stopWhileSlow } from '../support/stop-while-slow.ts'
import { cloneTemplateDb, type TemplateDb } from '../support/template-db.ts'

// Builds and drives the real binary; the stop it watches waits on seconds-late answers.
setDefaultTimeout(120_000)

let database: TemplateDb
let bin: string
let cert: TestCertificate
beforeAll(async () => {
  ;[bin, cert] = await Promise.all([compiledBinary(), generateTestCertificate()])
  database = await cloneTemplateDb('outbox_stop_slow')
})
afterAll(async () => {
  await database?.drop()
})

test('SIGTERM with sends in flight while every answer is 2 s late: each accepted send is recorded, in one statement on the connections already open, and the exit code and the last line say whether one went unrecorded', async () => {
  const r = await stopWhileSlow({ bin, cert, databaseUrl: database.url })
  const accepted = new Set(r.accepted)
  const sent = new Set(r.sent)
  expect(accepted.size).toBe(SENDS_AT_SIGNAL)
  const unrecorded = [...accepted].filter((id) => !sent.has(id)).sort()
  const said = [...r.last.unrecorded].sort()
  // The exit and its last line say whether any of them went unrecorded (to be sent again), and which.
  expect(
    { code: r.code, last: { level: r.last.line.level, unrecorded: said } },
    stopSaid(r),
  ).toEqual(
    unrecorded.length === 0
      ? { code: 0, last: { level: expect.not.stringMatching(/error/), unrecorded: [] } }
      : { code: 1, last: { level: 'error', unrecorded } },
  )
  // The recording has until a second before the bound (the grace + 8 s), not the grace + 5 s.
  expect(unrecorded).toEqual([])
  // Each statement costs a 2 s answer: the outcomes of the sends still running when the first is
  // known go in one, their send slots in one, and no connection is opened (a connect and its login
  // cost several).
  const named = (what: string) => r.statements.filter((s) => s.includes(what)).length
  expect({
    connectionsOpened: r.connectionsOpened,
    outcomes: named('mark_sent'),
    slotFrees: named('update mailer.send_slots'),
  }).toEqual({ connectionsOpened: 0, outcomes: 1, slotFrees: 1 })
})

test('SIGTERM while the sends take longer than the pool keeps an idle connection: the recording finds the connections open at the signal, nothing is primed, and the stop ends before its bound', async () => {
  const slow = await cloneTemplateDb('outbox_stop_slow_idle')
  try {
    // The pool's connections closed after 10 s idle, the sends still at Graph: the recording
    // opened one (a connect and login, each answer 2 s late), and a prime there (a transaction of
    // several statements) held the stop's last statements to the bound (the grace + 8 s).
    const r = await stopWhileSlow({
      bin,
      cert,
      databaseUrl: slow.url,
      graphMs: 13_000,
      graceSeconds: 20,
    })
    const accepted = new Set(r.accepted)
    expect(
      {
        unrecorded: [...accepted].filter((id) => !r.sent.includes(id)),
        code: r.code,
        last: r.last.line.msg,
        primes: r.statements.filter((s) => s.includes("set_config('lock_timeout'")).length,
        connectionsOpened: r.connectionsOpened,
      },
      stopSaid(r),
    ).toEqual({ unrecorded: [], code: 0, last: 'stopped', primes: 0, connectionsOpened: 0 })
  } finally {
    await slow.drop()
  }
})
