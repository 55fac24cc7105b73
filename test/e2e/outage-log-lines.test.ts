// A database that stays down: the binary logs the run of failed claims and LISTEN connects once, not once per retry.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { compiledBinary } from '../support/binary.ts'
import { closedPort } from '../support/closed-port.ts'
import { pollUntil } from '../support/events.ts'
import { growingOutput } from '../support/growing-output.ts'
import { listeningPort } from '../support/listening-port.ts'

// Builds and drives the real binary: slower than a unit test, still bounded.
setDefaultTimeout(90_000)

test('a database down from the start: one line for the failing claims and one for the LISTEN connects, not one per retry', async () => {
  const bin = await compiledBinary()
  // Nothing listens there: every connect is refused, as with Postgres stopped (closed-port.ts: not a
  // port just freed, which another run's cluster may take, its other answer a change of cause).
  const downPort = await closedPort()
  const p = Bun.spawn([bin, 'serve', '--role', 'worker'], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: `postgres://outbox:pw@127.0.0.1:${downPort}/outbox`,
      MAIL_TRANSPORT: 'discard',
      MAIL_FROM: 'outbox@example.com',
      HOST: '127.0.0.1',
      // The system's choice, read back from the "http listening" line: /metrics is served there.
      PORT: '0',
      LOG_LEVEL: 'info',
    },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const stdout = growingOutput(p.stdout)
  try {
    const port = await listeningPort(stdout, p.exited)
    // Six failed claims (0.25-0.5 s, doubling to 2.5-5 s apart): past the backoff's cap, and the
    // LISTEN session's reconnects (doubling from 0.25-0.5 s) have failed several times too.
    await pollUntil(async () => {
      const text = await fetch(`http://127.0.0.1:${port}/metrics`)
        .then((r) => r.text())
        .catch(() => '')
      const n = Number(/^outbox_loop_errors_total\{db="default"\} (\d+)/m.exec(text)?.[1] ?? 0)
      return n >= 6 ? true : undefined
    }, 60_000)
  } finally {
    p.kill('SIGTERM')
  }
  expect(await p.exited).toBe(0)
  await stdout.ended
  const lines = stdout
    .text()
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as { level: string; msg: string; failures?: number })
  const count = (msg: string) => lines.filter((l) => l.msg === msg).length
  expect({
    claims: count('claim failed; retrying'),
    listener: count('listener could not connect'),
  }).toEqual({ claims: 1, listener: 1 })
})
