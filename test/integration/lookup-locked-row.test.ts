// Rows settled past a row another transaction holds locked (an interrupted send found or held for review): no other send waits for that lock.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import type { SendGate } from '../../src/outbox/send-gate.ts'
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

/** Graph's shared limits at their smallest: one provider request at a time, across the worker. */
function onePermit(): SendGate {
  let taken = false
  const waiting: (() => void)[] = []
  return {
    open: false,
    async acquire(_mailbox, signal) {
      while (taken) {
        await new Promise<void>((r) => waiting.push(r))
        if (signal.aborted) return null
      }
      taken = true
      return {
        release: async () => {
          taken = false
          waiting.shift()?.()
        },
      }
    },
    pause: async () => {},
  }
}

test('a row found in the mailbox while an application holds it locked gives the provider permit back before its settlement waits for the lock: the next row is sent meanwhile', async () => {
  // An interrupted earlier send: the next claim looks the row up in the mailbox first.
  const found = await enqueue(t)
  await t.pool.query('update mailer.email_outbox set send_started_at = now() where id = $1', [
    found,
  ])
  let app = null as Promise<RowsHeld> | null
  engine = createTestEngine(t, {
    deps: {
      gate: onePermit(),
      // The application begins its UPDATE of the row's message while the lookup asks the mailbox.
      lookup: async (mail) => {
        if (mail.outboxId === found && !app) {
          app = holdRowLocked(t.pool, found, 'update')
          await app
        }
        return 'found'
      },
    },
  })
  try {
    await engine.start()
    await pollUntil(async () => (app ? true : undefined))
    const next = await enqueue(t)
    engine.drainer.wake()
    // Sent while the application still holds the found row; bounded well past the lock's reach.
    await engine.events.waitFor(settledFor(next, 'sent'), 20_000)
    expect(engine.sender.calls.map((m) => m.outboxId)).toEqual([next])

    await (await app)?.end('commit')
    await engine.events.waitFor(settledFor(found, 'sent'), 20_000)
    // Recorded as sent from the lookup, never sent again.
    expect(engine.sender.calls.map((m) => m.outboxId)).toEqual([next])
    expect((await rowOf(t, found)).status).toBe('sent')
    expect(await attemptsOf(t, found, 'outcome')).toEqual([{ outcome: 'sent' }])
  } finally {
    await app?.then((rows) => rows.end('rollback')).catch(() => {})
  }
})

test('without a gate (file, discard), a row held for review while an application holds it locked holds up no send claimed with it: the rest of the batch is sent meanwhile', async () => {
  // An interrupted earlier send, and a fresh row: one claim takes both.
  const held = await enqueue(t)
  await t.pool.query('update mailer.email_outbox set send_started_at = now() where id = $1', [held])
  const fresh = await enqueue(t)
  let app = null as Promise<RowsHeld> | null
  engine = createTestEngine(t, {
    deps: {
      ambiguousPolicy: 'hold',
      // The application begins its UPDATE of the interrupted row's message right after the claim.
      claim: async (db, p) => {
        const claim = await claimBatch(db, p)
        if (!app && claim.leases.some((l) => l.id === held)) {
          app = holdRowLocked(t.pool, held, 'update')
          await app
        }
        return claim
      },
    },
  })
  try {
    await engine.start()
    await engine.events.waitFor(settledFor(fresh, 'sent'), 20_000)
    expect(app).not.toBeNull()
    expect(engine.sender.calls.map((m) => m.outboxId)).toEqual([fresh])

    await (await app)?.end('commit')
    await engine.events.waitFor(settledFor(held, 'failed'), 20_000)
    expect(engine.sender.calls.map((m) => m.outboxId)).toEqual([fresh])
    expect((await rowOf(t, held)).last_error_code).toBe('ambiguous_send')
  } finally {
    await app?.then((rows) => rows.end('rollback')).catch(() => {})
  }
})
