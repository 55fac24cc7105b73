// Property-based tests of the outbox state machine at the SQL level: random interleavings of several workers.
import { expect, setDefaultTimeout, test } from 'bun:test'
import fc from 'fast-check'
import { cancelOutboxRow } from '../../src/outbox/cancel.ts'
import { claimBatch, type Lease } from '../../src/outbox/claim.ts'
import { extendLeases } from '../../src/outbox/heartbeat.ts'
import { reclaimExpired } from '../../src/outbox/reclaim.ts'
import { settleLeases } from '../../src/outbox/settle.ts'
import type { Settlement } from '../../src/outbox/settle-item.ts'
import { startSends } from '../../src/outbox/start-send.ts'
import { useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

// The two property tests get 180 s each: sixty runs of up to 40 actions, each run on a reset
// database, took 5-8 s in CI and 51.6 s in a run of the suite's files here at load 15 (one CPU
// hog beside the other engineers), 86 % of the 60 s they had. A bound on a loaded machine's
// speed, not on the product's.

const t = useTestDb()

/**
 * What t.reset() leaves, by DELETE and setval: each run starts on no rows, pauses or workers, its
 * ids from 1 (rows() orders them as text), as after a TRUNCATE (the schema has no foreign keys or
 * delete triggers), at a fraction of its cost: 120 TRUNCATEs of nine tables and their indexes
 * were 30-50 ms of Postgres CPU each, most of the file's.
 */
async function emptied() {
  await t.pool.query(
    `delete from mailer.email_attempts; delete from mailer.email_outbox; delete from mailer.templates;
     delete from mailer.workers; delete from mailer.mailbox_pacing; delete from mailer.send_slots;
     delete from mailer.sender_mailboxes; delete from mailer.probe_due_hints;
     delete from mailer.owed_probe_lookups;
     select setval('mailer.email_outbox_id_seq', 1, false), setval('mailer.email_attempts_id_seq', 1, false)`,
  )
}

const ROWS = 4
const WORKERS = 3
const MAX_ATTEMPTS = 4
const TERMINAL = new Set(['sent', 'failed', 'cancelled'])

type Action =
  | { op: 'claim'; w: number; limit: number }
  | { op: 'heartbeat'; w: number }
  | { op: 'expire'; pick: number }
  | { op: 'start' | 'complete' | 'fail' | 'release'; w: number; pick: number }
  | { op: 'retry'; w: number; pick: number; throttled: boolean; ambiguous: boolean }
  | { op: 'cancel'; pick: number }
  | { op: 'reclaim' }

const w = fc.integer({ min: 0, max: WORKERS - 1 })
const pick = fc.nat(20)
const action: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ op: fc.constant('claim' as const), w, limit: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ op: fc.constant('heartbeat' as const), w }),
  fc.record({ op: fc.constant('expire' as const), pick }),
  fc.record({ op: fc.constantFrom('start', 'complete', 'fail', 'release'), w, pick }),
  fc.record({
    op: fc.constant('retry' as const),
    w,
    pick,
    throttled: fc.boolean(),
    ambiguous: fc.boolean(),
  }),
  fc.record({ op: fc.constant('cancel' as const), pick }),
  fc.record({ op: fc.constant('reclaim' as const) }),
)

interface RowState {
  id: string
  status: string
  attempts: number
  sent_at: Date | null
  last_error_code: string | null
  lease_token: string | null
}

const settleParams = (worker: number) => ({
  workerId: `w${worker}`,
  defaultMaxAttempts: MAX_ATTEMPTS,
  throttleDeadlineSeconds: 86_400,
})

async function rows(): Promise<RowState[]> {
  const r = await t.pool.query<RowState>(
    `select id::text, status, attempts, sent_at, last_error_code, lease_token::text
       from mailer.email_outbox order by id`,
  )
  return r.rows
}

/** Applies one action; returns the ids a fenced write recorded as sent. */
async function apply(a: Action, held: Lease[][], ids: string[]): Promise<string[]> {
  const lease = (wk: number, p: number) => {
    const list = held[wk]!
    return list.length === 0 ? null : list[p % list.length]!
  }
  const settle = async (wk: number, l: Lease, settlement: Settlement) =>
    settleLeases(
      t.db,
      [{ id: l.id, token: l.token, settlement, startedAt: null }],
      settleParams(wk),
    )
  switch (a.op) {
    case 'claim': {
      const { leases: got } = await claimBatch(t.db, {
        limit: a.limit,
        workerId: `w${a.w}`,
        leaseSeconds: 60,
        defaultMaxAttempts: MAX_ATTEMPTS,
      })
      held[a.w]!.push(...got)
      return []
    }
    case 'heartbeat': {
      // Lost leases stay in the list on purpose: later fenced writes with them must do nothing.
      await extendLeases(t.db, { id: `w${a.w}`, host: 'h', pid: 1, version: 't' }, held[a.w]!, 60)
      return []
    }
    case 'expire': {
      // Time travel: a lease runs out without waiting for it.
      await t.pool.query(
        `update mailer.email_outbox set lease_expires_at = now() - interval '1 second'
          where id = $1 and status = 'sending'`,
        [ids[a.pick % ids.length]],
      )
      return []
    }
    case 'reclaim':
      await reclaimExpired(t.db, { defaultMaxAttempts: MAX_ATTEMPTS })
      return []
    case 'cancel':
      await cancelOutboxRow(t.db, ids[a.pick % ids.length]!, null)
      return []
    case 'start': {
      const l = lease(a.w, a.pick)
      if (l) await startSends(t.db, [l])
      return []
    }
    default: {
      const l = lease(a.w, a.pick)
      if (!l) return []
      const s: Settlement =
        a.op === 'complete'
          ? { kind: 'sent' }
          : a.op === 'fail'
            ? { kind: 'failed', code: 'ErrorInvalidRecipients', message: 'no such user' }
            : a.op !== 'retry'
              ? { kind: 'released' }
              : {
                  kind: 'retry',
                  code: a.throttled ? 'ApplicationThrottled' : 'http_500',
                  message: 'try again',
                  delayMs: 0,
                  throttled: a.throttled,
                  ambiguous: a.ambiguous,
                }
      const done = await settle(a.w, l, s)
      return done.filter((r) => r.outcome === 'sent').map((r) => r.id)
    }
  }
}

test('random interleavings never send a row twice, never lose one, never change a terminal row', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(action, { minLength: 5, maxLength: 40 }), async (actions) => {
      await emptied()
      const { rows: created } = await t.pool.query<{ id: string }>(
        `select mailer.enqueue_email(jsonb_build_object('to', 'r' || g || '@example.com',
           'subject', 's', 'text', 'b'))::text as id from generate_series(1, ${ROWS}) g`,
      )
      const ids = created.map((r) => r.id)
      const held: Lease[][] = Array.from({ length: WORKERS }, () => [])
      const sentBy = new Map<string, number>()
      const terminal = new Map<string, RowState>()

      const check = async () => {
        const now = await rows()
        // Never lost: every row is still there, in a known state.
        expect(now.map((r) => r.id)).toEqual(ids)
        for (const r of now) {
          const before = terminal.get(r.id)
          // A terminal row never changes again (status, attempts, sent_at, error, lease).
          if (before) expect(r).toEqual(before)
          else if (TERMINAL.has(r.status)) terminal.set(r.id, r)
        }
        return now.every((r) => TERMINAL.has(r.status))
      }

      let allTerminal = false
      for (const a of actions) {
        for (const id of await apply(a, held, ids)) sentBy.set(id, (sentBy.get(id) ?? 0) + 1)
        allTerminal = await check()
      }
      // Then let one healthy worker finish: every lease expires, is reclaimed, and the rows drain.
      // One round more once every row is terminal (checked unchanged by it); a round after that
      // would repeat the same statements on the same rows.
      for (let round = 0; round < 3 * MAX_ATTEMPTS; round++) {
        const lastRound = allTerminal
        await t.pool.query(
          `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where status = 'sending'`,
        )
        await reclaimExpired(t.db, { defaultMaxAttempts: MAX_ATTEMPTS })
        const { leases: got } = await claimBatch(t.db, {
          limit: ROWS,
          workerId: 'finisher',
          leaseSeconds: 60,
          defaultMaxAttempts: MAX_ATTEMPTS,
        })
        for (const l of got) {
          const done = await settleLeases(
            t.db,
            [{ id: l.id, token: l.token, settlement: { kind: 'sent' }, startedAt: null }],
            settleParams(9),
          )
          for (const r of done.filter((x) => x.outcome === 'sent'))
            sentBy.set(r.id, (sentBy.get(r.id) ?? 0) + 1)
        }
        allTerminal = await check()
        if (lastRound) break
      }

      const final = await rows()
      // Nothing is left in flight or waiting: each row ended sent, failed or cancelled.
      expect(final.filter((r) => !TERMINAL.has(r.status))).toEqual([])
      // Sent exactly once by a fenced write for each sent row; never twice for any row.
      for (const r of final) {
        expect(sentBy.get(r.id) ?? 0).toBe(r.status === 'sent' ? 1 : 0)
        if (r.status === 'sent') expect(r.sent_at).not.toBeNull()
      }
      const history = await t.pool.query<{ id: string; n: number }>(
        `select outbox_id::text as id, count(*)::int as n from mailer.email_attempts
          where outcome = 'sent' group by outbox_id having count(*) > 1`,
      )
      expect(history.rows).toEqual([])
    }),
    { numRuns: 60 },
  )
}, 180_000)

test('random interleavings never start a send after its cancel was accepted, and leave no cancelled row unsent-but-started', async () => {
  // The cancel promise: once the API accepted a cancel (200 cancelled, or 202 on a claimed row whose
  // send had not started), no send of that row starts, by the last check or by a claim that is the
  // last check (an open gate's), however workers, heartbeats, expiries and reclaims interleave.
  type CancelAction =
    | { op: 'claim'; w: number; limit: number; started: boolean }
    | { op: 'start' | 'complete' | 'release'; w: number; pick: number }
    | { op: 'expire'; pick: number }
    | { op: 'cancel'; pick: number }
    | { op: 'reclaim' }
  const cancelAction: fc.Arbitrary<CancelAction> = fc.oneof(
    fc.record({
      op: fc.constant('claim' as const),
      w,
      limit: fc.integer({ min: 1, max: 3 }),
      started: fc.boolean(),
    }),
    fc.record({ op: fc.constantFrom('start', 'complete', 'release'), w, pick }),
    fc.record({ op: fc.constant('expire' as const), pick }),
    fc.record({ op: fc.constant('cancel' as const), pick }),
    fc.record({ op: fc.constant('reclaim' as const) }),
  )
  await fc.assert(
    fc.asyncProperty(fc.array(cancelAction, { minLength: 5, maxLength: 40 }), async (actions) => {
      await emptied()
      const { rows: created } = await t.pool.query<{ id: string }>(
        `select mailer.enqueue_email(jsonb_build_object('to', 'r' || g || '@example.com',
           'subject', 's', 'text', 'b'))::text as id from generate_series(1, ${ROWS}) g`,
      )
      const ids = created.map((r) => r.id)
      const held: Lease[][] = Array.from({ length: WORKERS }, () => [])
      // Leases whose send started (their worker may send them): only these may complete.
      const started = new Set<Lease>()
      const cancelAccepted = new Set<string>()
      const startedAfterCancel: string[] = []
      const began = (l: Lease) => {
        started.add(l)
        if (cancelAccepted.has(l.id)) startedAfterCancel.push(l.id)
      }
      const settle = (wk: number, l: Lease, settlement: Settlement) =>
        settleLeases(
          t.db,
          [{ id: l.id, token: l.token, settlement, startedAt: null }],
          settleParams(wk),
        )
      for (const a of actions) {
        const lease = (wk: number, p: number) => {
          const list = held[wk]!
          return list.length === 0 ? null : list[p % list.length]!
        }
        if (a.op === 'claim') {
          const { leases: got } = await claimBatch(t.db, {
            limit: a.limit,
            workerId: `w${a.w}`,
            leaseSeconds: 60,
            defaultMaxAttempts: MAX_ATTEMPTS,
            markStarted: a.started,
          })
          held[a.w]!.push(...got)
          // The claim was the last check of these: their sends begin now.
          for (const l of got) if (l.started) began(l)
        } else if (a.op === 'start') {
          const l = lease(a.w, a.pick)
          if (!l || started.has(l)) continue
          const r = await startSends(t.db, [l])
          if (r.started.has(l.id)) began(l)
          else if (r.cancelled.has(l.id)) await settle(a.w, l, { kind: 'cancelled' })
        } else if (a.op === 'complete' || a.op === 'release') {
          const l = lease(a.w, a.pick)
          if (!l) continue
          // A worker sends only what started; one not started goes back unsent.
          const kind = a.op === 'complete' && started.has(l) ? 'sent' : 'released'
          await settle(a.w, l, { kind })
        } else if (a.op === 'expire') {
          await t.pool.query(
            `update mailer.email_outbox set lease_expires_at = now() - interval '1 second'
              where id = $1 and status = 'sending'`,
            [ids[a.pick % ids.length]],
          )
        } else if (a.op === 'reclaim') {
          await reclaimExpired(t.db, { defaultMaxAttempts: MAX_ATTEMPTS })
        } else {
          const id = ids[a.pick % ids.length]!
          if (await cancelOutboxRow(t.db, id, null)) cancelAccepted.add(id)
        }
      }
      // A healthy worker finishes: leases end and are reclaimed, rows are claimed, checked, sent;
      // up to one round on rows all terminal, as in the property above.
      for (let round = 0; round < 3 * MAX_ATTEMPTS; round++) {
        const lastRound = (await rows()).every((r) => TERMINAL.has(r.status))
        await t.pool.query(
          `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where status = 'sending'`,
        )
        await reclaimExpired(t.db, { defaultMaxAttempts: MAX_ATTEMPTS })
        const { leases: got } = await claimBatch(t.db, {
          limit: ROWS,
          workerId: 'finisher',
          leaseSeconds: 60,
          defaultMaxAttempts: MAX_ATTEMPTS,
        })
        for (const l of got) {
          if (l.cancelRequested) {
            await settle(9, l, { kind: 'cancelled' })
            continue
          }
          const r = await startSends(t.db, [l])
          if (r.started.has(l.id)) {
            began(l)
            await settle(9, l, { kind: 'sent' })
          } else if (r.cancelled.has(l.id)) await settle(9, l, { kind: 'cancelled' })
        }
        if (lastRound) break
      }
      expect(startedAfterCancel).toEqual([])
      const final = await rows()
      expect(final.filter((r) => !TERMINAL.has(r.status))).toEqual([])
      // Every row whose cancel was accepted ended cancelled.
      expect(final.filter((r) => cancelAccepted.has(r.id)).map((r) => r.status)).toEqual(
        final.filter((r) => cancelAccepted.has(r.id)).map(() => 'cancelled'),
      )
    }),
    { numRuns: 60 },
  )
}, 180_000)
