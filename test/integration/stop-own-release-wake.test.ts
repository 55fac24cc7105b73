// A row a running worker released for its own loop to claim again, its stop begun before that claim: the other workers are woken for it, as for the rows the stop gives back.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { createLogger } from '../../src/log.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import type { SendGate } from '../../src/outbox/send-gate.ts'
import { boundedLatches } from '../support/bounded-latches.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { holdRowLocked, type RowsHeld } from '../support/hold-row-locked.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })

const ends: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const end of ends.splice(0).reverse()) await end()
})

// A gate that waits for nothing and leaves the last check to each send (sendInSlot), as pg-send-gate.
const lastCheckGate: SendGate = {
  open: false,
  pausedBeyondMs: 1_000,
  acquire: async (_mailbox, signal) => (signal.aborted ? null : { release: async () => {} }),
  pause: async () => {},
}

/**
 * A session listening on the workers' channel from now on (as every other worker's does): `heard()`
 * is what came, once a notification of the test's own, sent after, has come too.
 */
async function listeningPeer(): Promise<{ heard(): Promise<string[]> }> {
  const listener = new pg.Client({ connectionString: t.url, application_name: 'peer-listener' })
  await listener.connect()
  ends.push(() => listener.end())
  const payloads: string[] = []
  listener.on('notification', (n) => payloads.push(n.payload ?? ''))
  await listener.query('listen mailer_outbox')
  return {
    async heard() {
      await t.pool.query(`select pg_notify('mailer_outbox', 'end')`)
      await pollUntil(async () => (payloads.includes('end') ? true : undefined))
      return payloads.slice(0, payloads.indexOf('end'))
    },
  }
}

/**
 * Its last check found the row busy, and its release's settlement found it so too (parked, to be
 * asked again): both since the application's lock was taken (`lockedAt`, database time).
 */
async function settlementFoundBusy(lockedAt: Date): Promise<void> {
  await pollUntil(async () => {
    const r = await t.pool.query(
      `select 1 from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid()
          and query like '%settle_verdict%' and query_start >= $1`,
      [lockedAt],
    )
    return r.rowCount !== 0 ? true : undefined
  })
}

/** Each row's history (outcomes), in id order. */
const histories = async () =>
  (
    await t.pool.query(
      `select array_agg(outcome order by id) as history from mailer.email_attempts group by outbox_id order by outbox_id`,
    )
  ).rows.map((r) => r.history)

/** A worker whose claims go through `claim`, its debug lines in `lines`. */
function worker(
  claim: typeof claimBatch,
  lines: { msg: string; outboxId?: string; outcome?: string }[],
) {
  const engine = createTestEngine(t, {
    workerId: 'stopping-worker',
    deps: {
      claim,
      gate: lastCheckGate,
      log: createLogger('debug', (l) => lines.push(JSON.parse(l))),
    },
  })
  ends.push(() => engine.stop(50))
  return engine
}

test('a row released while the worker runs, its stop begun before its own loop claimed it again: the other workers are woken for it, not left to their backstop poll', async () => {
  const latches = boundedLatches(30_000)
  ends.push(() => latches.end())
  // Its claim of the row: an application locks the row as the claim answers (its last check then
  // finds it busy, and the row goes back, released, once that lock goes). The claim after it is
  // held, answered, until the test lets it go.
  const app = Promise.withResolvers<RowsHeld>()
  const holdNext = { armed: false }
  const nextBegan = latches.make('the stopping worker’s next claim began')
  const nextLetGo = latches.make('its next claim let go by the test')
  const claim: typeof claimBatch = async (db, p) => {
    const r = await claimBatch(db, p)
    if (r.leases.length === 1) app.resolve(await holdRowLocked(t.pool, r.leases[0]!.id))
    else if (holdNext.armed) {
      holdNext.armed = false
      nextBegan.resolve()
      await nextLetGo.wait()
    }
    return r
  }
  const lines: { msg: string; outboxId?: string; outcome?: string }[] = []
  const stopping = worker(claim, lines)
  await stopping.start()
  const id = await enqueue(t)
  const rowLock = await latches.watch(app.promise)
  ends.push(() => rowLock.end('rollback'))
  // Its loop claims again (news), the row still locked: that claim's answer cannot hold it.
  holdNext.armed = true
  stopping.drainer.wake()
  await latches.watch(nextBegan.wait())
  const lockedAt = (await rowLock.client.query('select now() as at')).rows[0].at
  await settlementFoundBusy(lockedAt)
  // The lock goes: the release commits while the worker runs (its own loop is to take the row).
  await rowLock.end('commit')
  await pollUntil(async () =>
    lines.some((l) => l.msg === 'settled' && l.outboxId === id && l.outcome === 'released')
      ? true
      : undefined,
  )
  const peer = await listeningPeer()
  // The stop begins before its loop claims again; then the claim under way answers (nothing).
  const stopped = stopping.drainer.stop(50)
  nextLetGo.resolve()
  await stopped
  // Pending and due, no worker's: only a wake brings it to a listening worker before its poll.
  const row = await t.pool.query(
    `select status, lease_owner, send_at <= now() as due from mailer.email_outbox where id = $1`,
    [id],
  )
  expect(row.rows).toEqual([{ status: 'pending', lease_owner: null, due: true }])
  expect(await peer.heard()).toEqual([''])
})

test('a worker that sent its rows and stops wakes nobody: a healthy send asks for no notification, at its settlement or its stop', async () => {
  const lines: { msg: string; outboxId?: string; outcome?: string }[] = []
  const w = worker(claimBatch, lines)
  await w.start()
  const peer = await listeningPeer()
  const ids = [await enqueue(t), await enqueue(t)]
  await pollUntil(async () => (w.sender.calls.length === 2 ? true : undefined))
  await pollUntil(async () =>
    ids.every((id) =>
      lines.some((l) => l.msg === 'settled' && l.outboxId === id && l.outcome === 'sent'),
    )
      ? true
      : undefined,
  )
  await w.drainer.stop(50)
  // The enqueues' own notifications only (each names its row, sql/0030): no empty wake.
  expect(await peer.heard()).toEqual(ids)
})

test('a row released while the worker runs and claimed again by its own loop before its stop: the stop wakes nobody', async () => {
  const app = Promise.withResolvers<RowsHeld>()
  let locked = false
  const claim: typeof claimBatch = async (db, p) => {
    const r = await claimBatch(db, p)
    if (!locked && r.leases.length === 1) {
      locked = true
      app.resolve(await holdRowLocked(t.pool, r.leases[0]!.id))
    }
    return r
  }
  const lines: { msg: string; outboxId?: string; outcome?: string }[] = []
  const w = worker(claim, lines)
  await w.start()
  const peer = await listeningPeer()
  const id = await enqueue(t)
  const rowLock = await app.promise
  ends.push(() => rowLock.end('rollback'))
  const lockedAt = (await rowLock.client.query('select now() as at')).rows[0].at
  await settlementFoundBusy(lockedAt)
  await rowLock.end('commit')
  // Released, then claimed again by its own loop and sent.
  await pollUntil(async () =>
    lines.some((l) => l.msg === 'settled' && l.outboxId === id && l.outcome === 'sent')
      ? true
      : undefined,
  )
  await w.drainer.stop(50)
  expect(await histories()).toEqual([['released', 'sent']])
  // The enqueue's own notification only.
  expect(await peer.heard()).toEqual([id])
})
