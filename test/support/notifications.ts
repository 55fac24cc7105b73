// The payloads heard on the outbox's notification channel while a test's statements run.
import { expect } from 'bun:test'
import pg from 'pg'
import type { TestDb } from './db.ts'

/** The payloads heard on mailer_outbox while `run` runs, in order, once a later round trip shows them all. */
export async function payloadsHeard(
  t: TestDb,
  run: (c: pg.PoolClient) => Promise<unknown>,
): Promise<string[]> {
  const listener = new pg.Client({ connectionString: t.url })
  await listener.connect()
  const heard: string[] = []
  // Ended whatever `run` does: left open, the file's database drop would end it under no
  // listener, an unhandled error on top of the test's own failure.
  try {
    listener.on('notification', (n) => heard.push(n.payload ?? ''))
    await listener.query('listen mailer_outbox')
    const c = await t.pool.connect()
    try {
      await run(c)
      // A notification of our own, sent after theirs committed, arrives after them.
      await c.query(`select pg_notify('mailer_outbox', 'end')`)
    } finally {
      c.release()
    }
    const deadline = Date.now() + 20_000
    while (!heard.includes('end') && Date.now() < deadline) await Bun.sleep(10)
  } finally {
    await listener.end()
  }
  expect(heard.at(-1)).toBe('end')
  return heard.slice(0, -1)
}
