// A cancel accepted (202) for a claimed row that its last check then hands back busy: the row ends cancelled, never sent, whatever comes next.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { cancelOutbox } from '../../src/outbox/cancel.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { createSlots, type Slots } from '../../src/outbox/slots.ts'
import { useTestDb } from '../support/db.ts'
import { attemptsOf, createTestEngine, enqueue, rowOf, type TestEngine } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { holdRowLocked, type RowsHeld } from '../support/hold-row-locked.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
let engine: TestEngine | null = null
afterEach(async () => {
  await engine?.stop()
  engine = null
})

test('a row whose cancel was accepted while claimed, and whose last check found it busy, ends cancelled, not expired, though its expiresAt passes before the lock goes', async () => {
  // An expiresAt: the claim does not record the send as started, so the last check comes in the
  // send slot (and a cancel accepted before it is honoured there). It is brought near once the row
  // is claimed: set 4 s on at the enqueue, it passed before a slow start's claim, which then found
  // the row expired.
  const id = await enqueue(t, undefined, {
    expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
  })
  // Counts the slots given back: the one slot comes back once the last check has answered.
  const shared = createSlots(1)
  let given = 0
  const slots: Slots = {
    size: shared.size,
    free: () => shared.free(),
    tryAcquire: () => shared.tryAcquire(),
    acquire: (signal) => shared.acquire(signal),
    release: () => {
      given += 1
      shared.release()
    },
  }
  let app = null as RowsHeld | null
  let cancel = null as string | null
  engine = createTestEngine(t, {
    deps: {
      slots,
      // Right after the claim the user cancels (accepted: the send has not started), then an
      // application begins an UPDATE of the row and keeps its transaction open.
      claim: async (db, p) => {
        const claim = await claimBatch(db, p)
        if (!app && claim.leases.some((l) => l.id === id)) {
          cancel = (await cancelOutbox(t.db, id, null)).outcome
          await t.pool.query(
            `update mailer.email_outbox set expires_at = now() + interval '1 second' where id = $1`,
            [id],
          )
          app = await holdRowLocked(t.pool, id, 'update')
        }
        return claim
      },
    },
  })
  try {
    await engine.start()
    // The last check has answered (the row was locked: handed back busy, unsent), and the row's
    // expiresAt has passed in database time, while the application still holds it.
    await pollUntil(async () => (app && given >= 1 ? true : undefined), 20_000)
    await pollUntil(async () => {
      const r = await t.pool.query(
        'select now() > expires_at as past from mailer.email_outbox where id = $1',
        [id],
      )
      return r.rows[0].past ? true : undefined
    }, 20_000)
    expect(cancel).toBe('cancel_requested')
    expect((await rowOf(t, id)).status).toBe('sending')
    await app?.end('commit')

    const settled = await engine.events.waitFor(settledFor(id), 20_000)
    expect(settled).toMatchObject({ outcome: 'cancelled' })
    expect(engine.sender.calls).toEqual([])
    const row = await rowOf(t, id)
    // The attempt counts, as a cancel its last check had found: the history numbers it.
    expect([row.status, row.last_error_code, row.send_started_at, row.attempts]).toEqual([
      'cancelled',
      'cancelled',
      null,
      1,
    ])
    expect(await attemptsOf(t, id, 'attempt, outcome, error_code')).toEqual([
      { attempt: 1, outcome: 'cancelled', error_code: 'cancelled' },
    ])
  } finally {
    await app?.end('rollback').catch(() => {})
  }
})
