// A cancel recorded before a claim wins at that claim, before the row is rendered: a row that no longer renders is cancelled, not failed.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { useTestDb } from '../support/db.ts'
import { attemptsOf, createTestEngine, rowOf, type TestEngine } from '../support/engine.ts'
import { settledFor } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
let engine: TestEngine | null = null
afterEach(async () => {
  await engine?.stop()
  engine = null
})

// A pending row with its cancel recorded: one the API's cancel found claimed (202) and whose
// worker then gave it back unsent (a stop before the send). The next claim must cancel it, not
// render it: the caller asked for no send, and a render failure would file it as `failed`.
test('a row whose cancel was recorded is cancelled at its next claim, even when its message no longer renders', async () => {
  const { rows } = await t.pool.query<{ id: string }>(
    `insert into mailer.email_outbox (message, cancel_requested_at)
     values ($1::jsonb, now()) returning id::text`,
    [
      JSON.stringify({
        to: [{ address: 'rcpt@example.com' }],
        subject: 'Hello',
        text: 'Hi',
        // Stored before 0020 checked it: rendering refuses it (stored-message-checked.test.ts).
        attachments: [{ filename: 'a.txt', contentBase64: 'QQ==', contentType: 'text' }],
      }),
    ],
  )
  const id = rows[0]!.id
  engine = createTestEngine(t)
  await engine.start()
  await engine.events.waitFor(settledFor(id), 20_000)
  expect(await rowOf(t, id)).toMatchObject({ status: 'cancelled', last_error_code: 'cancelled' })
  expect((await attemptsOf(t, id, 'outcome')).map((a) => a.outcome)).toEqual(['cancelled'])
  expect(engine.sender.calls).toEqual([])
})
