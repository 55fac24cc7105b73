// A worker's statements through an answer-holding proxy, and its stop while one answer is held: whether the stop resolved with that statement unanswered.
import { type Clock, systemClock } from '../../src/clock.ts'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { type AnswerHoldingProxy, startAnswerHoldingProxy } from './answer-holding-proxy.ts'
import { boundedLatches } from './bounded-latches.ts'
import type { TestDb } from './db.ts'
import { pollUntil } from './events.ts'

export interface AnswerHoldingHandle {
  proxy: AnswerHoldingProxy
  /** A handle whose statements go through the proxy: the worker's `db`. */
  handle: DbHandle
  /** Releases what is held, closes the handle and the proxy. */
  close(): Promise<void>
}

export async function openAnswerHoldingHandle(t: TestDb): Promise<AnswerHoldingHandle> {
  const proxy = await startAnswerHoldingProxy(t.url)
  const handle = openDb({ name: 'test', url: proxy.url, log: silentLogger, maxConnections: 20 })
  return {
    proxy,
    handle,
    async close() {
      proxy.release()
      await handle.close()
      proxy.close()
    },
  }
}

/**
 * Runs `stop` while the proxy holds (or is to hold) a statement's answer: `meanwhile` runs once it
 * began; the answer is released once `woundDown` says the stop has done all else (or the stop is
 * over). Returns whether the answer was still held when the stop resolved: true, the stop left that
 * statement running. Only the held answer counts: `woundDown` reads the stop's acts, never the held
 * statement's effect, so that statement need not have run yet when `meanwhile` ends (the proxy
 * holds from its sending).
 */
export async function heldWhenStopped(
  proxy: AnswerHoldingProxy,
  stop: () => Promise<void>,
  p: { meanwhile?: () => Promise<void>; woundDown: () => Promise<boolean> },
): Promise<boolean | null> {
  const at = { stop: null as boolean | null }
  const stopped = stop().then(() => {
    at.stop = proxy.holding()
  })
  await p.meanwhile?.()
  await pollUntil(
    async () => (at.stop !== null || (await p.woundDown()) ? true : undefined),
    30_000,
  )
  proxy.release()
  await stopped
  return at.stop
}

/**
 * The system clock, telling when a stop's grace of `graceMs` began: its wait for the sends in flight
 * (shutdown-grace.ts) sleeps at most that long. By then the stop's wind-down has begun. A wait for
 * it (`graceBegan()`, called as the stop begins) fails past `boundMs`, naming it.
 */
export function graceBeganClock(
  graceMs: number,
  boundMs = 20_000,
): { clock: Clock; graceBegan: () => Promise<void> } {
  const began = boundedLatches(boundMs).make('the stop’s grace began (its wait for the sends)')
  const clock: Clock = {
    ...systemClock,
    sleep(ms, signal) {
      if (ms > graceMs - 5_000 && ms <= graceMs) began.resolve()
      return systemClock.sleep(ms, signal)
    },
  }
  return { clock, graceBegan: () => began.wait() }
}

/**
 * The stop's wind-down over but for the held answer: row `id` settled `status`, the worker's last
 * acts (its deregistration, `mailFrom` noted again since `stopAt`, database time) committed and
 * answered, no statement of the worker's out on `handle` but the one held.
 */
export async function woundDownButHeld(
  t: TestDb,
  handle: DbHandle,
  p: { id: string; status: string; mailFrom: string; stopAt: Date },
): Promise<boolean> {
  const r = await t.pool.query(
    `select (select count(*) from mailer.workers)::int as workers,
            (select status from mailer.email_outbox where id = $1) as status,
            (select noted_at >= $2 from mailer.sender_mailboxes where mailbox = $3) as noted`,
    [p.id, p.stopAt, p.mailFrom],
  )
  const { workers, status, noted } = r.rows[0]
  const out = handle.pool.totalCount - handle.pool.idleCount
  return workers === 0 && status === p.status && noted === true && out === 1
}

/** Now, in database time: when a stop begins. */
export async function databaseNow(t: TestDb): Promise<Date> {
  return (await t.pool.query('select now() as at')).rows[0].at
}
