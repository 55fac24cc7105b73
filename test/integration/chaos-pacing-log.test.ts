// The chaos soak's pacing log: its triggers record every change of mailer.mailbox_pacing, read back in the order written.
import { afterAll, expect, setDefaultTimeout, test } from 'bun:test'
import { installPacingLog, readPacingLog } from '../faults/chaos/pacing-log.ts'
import { createTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = await createTestDb()
afterAll(() => t.drop())
const q = async (text: string, values?: unknown[]) => (await t.pool.query(text, values)).rows
const harness = { name: 'pacing-log', url: t.url, pool: t.pool, q }

test('twelve changes of one row come back in the order written (seq 10 after 9), each owing or clearing the probe', async () => {
  await installPacingLog(harness)
  await q(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval) values ('box@contoso.example', now(), interval '0')`,
  )
  for (let i = 1; i <= 11; i++)
    await q(
      `update mailer.mailbox_pacing set probe_owed = $1 where mailbox = 'box@contoso.example'`,
      [i % 2 === 1],
    )
  const { changes } = await readPacingLog(harness)
  expect(changes.map((c) => `${c.op} ${c.probeOwed}`)).toEqual([
    'INSERT false',
    ...Array.from({ length: 11 }, (_, i) => `UPDATE ${i % 2 === 0}`),
  ])
  expect(changes.every((c, i) => i === 0 || c.at >= changes[i - 1]!.at)).toBe(true)
})

test('a claim (a new lease_token) is written with its time; a settlement clearing the token is not', async () => {
  const [row] = await q(
    `insert into mailer.email_outbox (message) values ('{"to":[{"address":"x@contoso.example"}],"subject":"s","text":"t"}'::jsonb) returning id::text`,
  )
  const token = () => crypto.randomUUID()
  for (const t of [token(), null, token()])
    await q(`update mailer.email_outbox set lease_token = $2 where id = $1`, [row.id, t])
  const { claims } = await readPacingLog(harness)
  expect(claims.map((c) => c.outboxId)).toEqual([row.id, row.id])
  expect(claims[1]!.claimedAt).toBeGreaterThanOrEqual(claims[0]!.claimedAt)
})
