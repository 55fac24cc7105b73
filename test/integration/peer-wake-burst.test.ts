// The peer wake: one notification for a burst of calls, and one more for the calls that came while it was under way.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { silentLogger } from '../../src/log.ts'
import { createPeerWake } from '../../src/outbox/peer-wake.ts'
import { createSideStatements } from '../../src/outbox/side-statements.ts'
import { useTestDb } from '../support/db.ts'
import { payloadsHeard } from '../support/notifications.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()

/** The notifications `calls` calls of one peer wake, made in one tick, sent. */
async function wakesHeard(calls: number) {
  const besides = createSideStatements()
  const wake = createPeerWake({ db: t.db, log: silentLogger, besides })
  return payloadsHeard(t, async () => {
    for (let i = 0; i < calls; i++) wake()
    await besides.settled()
  })
}

test('one call: one empty notification, as the insert trigger sends', async () => {
  expect(await wakesHeard(1)).toEqual([''])
})

test('a batch given back together (calls in one tick): one notification, and one more for the calls made while it was under way', async () => {
  // The first call sends; the others came while it was on its way, for rows that may have
  // committed after it was sent: answered by one more, not one each.
  expect(await wakesHeard(5)).toEqual(['', ''])
})

test('calls each after the last notification ended: one each', async () => {
  const besides = createSideStatements()
  const wake = createPeerWake({ db: t.db, log: silentLogger, besides })
  const heard = await payloadsHeard(t, async () => {
    for (let i = 0; i < 3; i++) {
      wake()
      await besides.settled()
    }
  })
  expect(heard).toEqual(['', '', ''])
})
