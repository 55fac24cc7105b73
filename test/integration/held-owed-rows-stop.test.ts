// A worker's stop with a statement bringing held owed rows due still running: the sends in flight get their grace, not that statement's wait first.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { untilLockWaits } from '../support/lock-waits.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb()

test("a stop begins its sends' grace at once, while a statement bringing held owed rows due (sql/0109) still waits on a slow database", async () => {
  const e = createTestEngine(t)
  e.sender.hold()
  await e.start()
  await enqueue(t)
  await pollUntil(async () => (e.sender.inFlight() === 1 ? true : undefined))
  // The held rows' statement reads mailer.mailbox_pacing: a lock on it stands for a database slow
  // to answer that one statement (up to statement_timeout, 30 s), touching nothing else.
  const locker = await t.pool.connect()
  let stopped: Promise<void> | null = null
  try {
    await locker.query('begin; lock table mailer.mailbox_pacing in access exclusive mode')
    e.drainer.owedRowsHeld()
    await untilLockWaits(t.pool)
    stopped = e.stop(100)
    // The grace (100 ms) runs from the stop: the send held in flight is aborted once it is over,
    // while the held rows' statement still waits.
    await pollUntil(async () => (e.sender.inFlight() === 0 ? true : undefined), 10_000)
    expect(e.sender.inFlight()).toBe(0)
  } finally {
    await locker.query('rollback')
    locker.release()
    e.sender.release()
    await stopped
  }
})
