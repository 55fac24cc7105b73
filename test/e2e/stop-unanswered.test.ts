// A SIGTERM while the database answers nothing (a black-holed route): serve exits by Fly's kill_timeout, saying why and whether a send went unrecorded, not after the driver's 60 s timeouts.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { compiledBinary } from '../support/binary.ts'
import { pollUntil } from '../support/events.ts'
import { growingOutput } from '../support/growing-output.ts'
import { listeningPort } from '../support/listening-port.ts'
import { startSilencingProxy } from '../support/silencing-proxy.ts'
import { cloneTemplateDb, type TemplateDb } from '../support/template-db.ts'

// Builds and drives the real binary; the stop it measures took 60 s before.
setDefaultTimeout(120_000)

let database: TemplateDb
let url: string
let bin: string
beforeAll(async () => {
  bin = await compiledBinary()
  database = await cloneTemplateDb('outbox_stop')
  url = database.url
})
afterAll(async () => {
  await database?.drop()
})

test('SIGTERM with the database black-holed and nothing sent: exit 0 within SHUTDOWN_GRACE_SECONDS + 8 s, the stop cut short and why logged', async () => {
  const proxy = await startSilencingProxy(url)
  const graceSeconds = 1
  const p = Bun.spawn([bin, 'serve', '--role', 'worker'], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: proxy.url,
      MAIL_TRANSPORT: 'discard',
      MAIL_FROM: 'outbox@example.com',
      HOST: '127.0.0.1',
      // The system's choice of port, read back: none picked here for another process to take first.
      PORT: '0',
      SHUTDOWN_GRACE_SECONDS: String(graceSeconds),
      LOG_LEVEL: 'info',
    },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const stdout = growingOutput(p.stdout)
  let signalledAt = 0
  try {
    const port = await listeningPort(stdout, p.exited)
    await pollUntil(async () => {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null)
      return res?.status === 200 ? true : undefined
    }, 20_000)
    // Its connections and any new one now answer nothing: no refusal, no reset.
    proxy.blackhole()
    signalledAt = performance.now()
    p.kill('SIGTERM')
    const code = await p.exited
    const seconds = (performance.now() - signalledAt) / 1000
    // fly.toml's kill_timeout is the grace + 10 s: the process is gone before Fly kills it.
    // Nothing accepted is left unrecorded: the rest costs only a lease's wait, not a failed stop.
    expect({ code, withinBound: seconds < graceSeconds + 10 }).toEqual({
      code: 0,
      withinBound: true,
    })
  } finally {
    p.kill('SIGKILL')
    proxy.close()
  }
  await stdout.ended
  expect(stdout.text()).toContain('"msg":"stop cut short: exiting"')
})

test('SIGTERM during a start the database holds up (accepted, never answered): the bound counts from the signal, not from the start’s end', async () => {
  const proxy = await startSilencingProxy(url)
  // From the first connection on: the start's schema check waits for its connect timeout (10 s).
  proxy.blackhole()
  const graceSeconds = 5
  const p = Bun.spawn([bin, 'serve', '--role', 'worker'], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: proxy.url,
      // No MAIL_FROM: its warning is serve's first line, logged once the signals are listened for.
      MAIL_TRANSPORT: 'discard',
      HOST: '127.0.0.1',
      PORT: '0',
      SHUTDOWN_GRACE_SECONDS: String(graceSeconds),
      LOG_LEVEL: 'info',
    },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const stdout = growingOutput(p.stdout)
  let code: number
  try {
    await pollUntil(
      async () => (stdout.text().includes('MAIL_FROM is not set') ? true : undefined),
      20_000,
    )
    const signalledAt = performance.now()
    p.kill('SIGTERM')
    code = await p.exited
    const seconds = (performance.now() - signalledAt) / 1000
    // Fly kills at kill_timeout (the grace + 10 s) after its signal, however long the start took.
    expect({ withinBound: seconds < graceSeconds + 10, seconds }).toEqual({
      withinBound: true,
      seconds: expect.any(Number),
    })
  } finally {
    p.kill('SIGKILL')
    proxy.close()
  }
  await stdout.ended
  // Started by the bound (its connect timed out), it had sent nothing: exit 0, the stop cut short.
  // Still starting, it may have sent unknown to it: exit 1, unfinished.
  const said = stdout.text().includes('"msg":"stop cut short: exiting"')
    ? 'cut short'
    : stdout.text().includes('"msg":"stop unfinished: exiting"')
      ? 'unfinished'
      : 'neither'
  expect({ code, said }).toEqual(
    code === 0 ? { code, said: 'cut short' } : { code: 1, said: 'unfinished' },
  )
})
