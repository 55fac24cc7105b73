// serve started while a hand session's exclusive lock holds mailer.schema_migrations: the start is not held for the pool's statement_timeout, the lock's holder is named in the log, and /readyz names it.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import { createLogger } from '../../src/log.ts'
import { serve } from '../../src/serve.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { holdHandLock } from '../support/hand-lock.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

let t: TestDb
beforeAll(async () => {
  t = await createTestDb()
})
afterAll(async () => {
  await t.drop()
})

// Below the pool's statement_timeout (30 s), after which a schema read held by the lock fails.
const START_BOUND_MS = 15_000

test('serve --role worker starts beside the lock, its log naming the session that holds it', async () => {
  const lock = await holdHandLock(t.url, 'mailer.schema_migrations')
  const lines: { msg: string; [k: string]: unknown }[] = []
  let running: Awaited<ReturnType<typeof serve>> | undefined
  let started: Promise<string> | undefined
  try {
    started = serve(
      loadConfig({
        DATABASE_URL: t.url,
        MAIL_TRANSPORT: 'discard',
        MAIL_FROM: 'outbox@example.com',
        HOST: '127.0.0.1',
        PORT: '0',
      }),
      { role: 'worker', log: createLogger('info', (l) => lines.push(JSON.parse(l))) },
    ).then((r) => {
      running = r
      return 'started'
    })
    const outcome = await Promise.race([
      started,
      Bun.sleep(START_BOUND_MS).then(() => 'still starting while the lock is held'),
    ])
    const warned = lines.filter((l) => l.msg.includes(lock.named)).map((l) => l.level)
    expect({ outcome, warned }).toEqual({ outcome: 'started', warned: ['warn'] })
  } finally {
    await lock.release()
    // A start held by the lock ends once it is released.
    await started?.catch(() => {})
    await running?.stop('test')
  }
})
