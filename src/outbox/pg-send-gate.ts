// SendGate coordinated through Postgres, so the limits hold across every worker and machine.
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.ts'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import type { SendGate, SendPermit } from './send-gate.ts'
import { freeSlot, pauseMailbox, takePacing, takeSlot } from './send-limits.ts'

export interface PgSendGateOptions {
  db: Kysely<Database>
  clock: Clock
  log: Logger
  holder: string
  /** Concurrent provider requests across all workers. */
  maxConcurrency: number
  /** Sends per mailbox per minute across all workers; 0 = no pacing. */
  ratePerMinute: number
  /** A dead holder's slot frees itself after this long: longer than one request's deadline. */
  slotTtlMs: number
  /** Upper bound of one wait between attempts, so a freed slot is noticed quickly. */
  maxWaitMs?: number
}

export function createPgSendGate(o: PgSendGateOptions): SendGate {
  const maxWaitMs = o.maxWaitMs ?? 250
  const intervalMs = o.ratePerMinute > 0 ? 60_000 / o.ratePerMinute : 0
  const key = (mailbox: string) => mailbox.trim().toLowerCase()
  const jitter = (ms: number) => ms * (0.8 + Math.random() * 0.4)

  async function waitForPacing(mailbox: string, signal: AbortSignal): Promise<boolean> {
    if (intervalMs === 0) return true
    while (!signal.aborted) {
      const wait = await takePacing(o.db, { mailbox: key(mailbox), intervalMs })
      if (wait === 0) return true
      await o.clock.sleep(Math.max(5, Math.min(wait, 5_000)), signal)
    }
    return false
  }

  async function waitForSlot(signal: AbortSignal): Promise<SendPermit | null> {
    const token = crypto.randomUUID()
    let delay = 20
    while (!signal.aborted) {
      const slot = await takeSlot(o.db, {
        max: o.maxConcurrency,
        holder: o.holder,
        token,
        ttlMs: o.slotTtlMs,
      })
      if (slot !== null) {
        return {
          release: () =>
            freeSlot(o.db, slot, token).catch((err) =>
              o.log.warn('could not free a send slot; it expires by itself', { slot, err }),
            ),
        }
      }
      await o.clock.sleep(jitter(delay), signal)
      delay = Math.min(delay * 2, maxWaitMs)
    }
    return null
  }

  return {
    open: false,
    async acquire(mailbox, signal) {
      // Pace first: holding a slot while waiting for one mailbox would starve the others.
      if (!(await waitForPacing(mailbox, signal))) return null
      return waitForSlot(signal)
    },
    async pause(mailbox, ms) {
      await pauseMailbox(o.db, { mailbox: key(mailbox), ms })
      o.log.info('mailbox paused after a provider throttle', { pauseMs: Math.round(ms) })
    },
  }
}
