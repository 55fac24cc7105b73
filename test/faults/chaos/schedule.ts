// The harness's seeded choices during the chaos: which action when, on which worker, of what size, and the rows it enqueues.

import { MAILBOX } from '../harness.ts'
import { pick } from './random.ts'
import {
  LEASE_SCALE,
  MAX_LATENCY_MS,
  NEXT_MAIL_FROM,
  REJECTED,
  SENDERS,
  WORKERS,
} from './settings.ts'

// The default mix; the harsh one's actions after crashPostgres weigh nothing here, so a seed's
// draws stay what they were (test/unit/chaos-schedule.test.ts pins them).
export const ACTIONS = {
  enqueueSql: 22,
  enqueueApi: 8,
  kill: 9,
  term: 7,
  restartPostgres: 3,
  crashPostgres: 3,
  crashAfterEnqueue: 0,
  killListener: 0,
  terminateBackends: 7,
  cutGraph: 9,
  cancel: 12,
  retry: 8,
  latency: 4,
  revokeToken: 3,
  // The pause mix's own (CHAOS_PAUSES): weightless here, last, so no older draw moves.
  throttleMailbox: 0,
  probeRowCommand: 0,
  // The slow-database shape's own (CHAOS_SLOW_DB), after the pause mix's for the same reason.
  slowDatabase: 0,
}
export type ChaosAction = keyof typeof ACTIONS

/** CHAOS_HARSH: Postgres crashed three times as often, half of them just after an enqueue, listeners killed alone, more cuts. */
export const HARSH_ACTIONS: Record<ChaosAction, number> = {
  ...ACTIONS,
  restartPostgres: 3,
  crashPostgres: 5,
  crashAfterEnqueue: 5,
  killListener: 7,
  cutGraph: 12,
}

/** CHAOS_PAUSES: mailboxes throttled alone, and the rows an owed probe waits for cancelled and retried. */
export const PAUSE_ACTIONS: Record<ChaosAction, number> = {
  ...ACTIONS,
  throttleMailbox: 12,
  probeRowCommand: 8,
}

/** CHAOS_SLOW_DB: bursts of a slow database, for one worker slot or every one. */
export const SLOW_DB_ACTIONS: Record<ChaosAction, number> = {
  ...ACTIONS,
  slowDatabase: 12,
}

export type RowSpec = ReturnType<typeof rowSpec>

/** A burst of a slow database: one slot's proxy (else every slot's) delays for `forMs`. */
export interface SlowDatabase {
  everySlot: boolean
  answerMs: number
  requestMs: number
  forMs: number
}

/** One mailbox answered 429 with its own Retry-After for a while; the others send. */
export interface MailboxThrottle {
  mailbox: string
  forMs: number
  retryAfterS: number
}

/** Graph answers 401 to the token every worker holds; the refresh may meet Entra hung or down. */
export interface TokenRevocation {
  entra: 'hangs' | '503' | 'fine'
  reason: 'expired' | 'invalid'
}

/**
 * Every draw the harness makes, from one seeded stream. Each method draws in a fixed order, so one
 * seed makes the same choices as long as the turns ask for the same draws (which depends on what
 * they find: Postgres down, no rows to cancel yet).
 */
export class ChaosSchedule {
  constructor(
    private readonly r: () => number,
    private readonly weights: Record<ChaosAction, number> = ACTIONS,
    /** The pause mix's rows (rowSpec): drawn only when set, so older seeds keep their draws. */
    private readonly pauses = false,
  ) {}

  /** Pacing of the faults themselves (not a wait for an effect). */
  pauseMs(): number {
    return 100 + Math.floor(this.r() * 600)
  }

  /** The next action, the worker slot a stop would hit, and how long that stop lasts. */
  step(): { action: ChaosAction; slot: number; downMs: number } {
    const action = pick(this.r, this.weights)
    const slot = Math.floor(this.r() * WORKERS)
    const downMs = Math.floor(this.r() * 2_000)
    return { action, slot, downMs }
  }

  /** 1 to 25 rows for one SQL enqueue. */
  batch(): RowSpec[] {
    const n = 1 + Math.floor(this.r() * 25)
    return Array.from({ length: n }, () => rowSpec(this.r, this.pauses))
  }

  row(): RowSpec {
    return rowSpec(this.r, this.pauses)
  }

  /**
   * MAIL_FROM's mailboxes (current and next) three times in four, else a named sender's; a
   * Retry-After of 2 to 12 s, past the 5 s hold most times (a pause that owes MAIL_FROM's probe).
   */
  mailboxThrottle(): MailboxThrottle {
    const x = this.r()
    const mailbox = x < 0.45 ? MAILBOX : x < 0.75 ? NEXT_MAIL_FROM : this.oneOf(SENDERS)
    return {
      mailbox,
      forMs: 1_000 + Math.floor(this.r() * 7_000),
      retryAfterS: 2 + Math.floor(this.r() * 11),
    }
  }

  /** A cancel alone, or a cancel and the retry that makes the row due again. */
  probeCommand(): 'cancel' | 'cancelThenRetry' {
    return this.r() < 0.5 ? 'cancel' : 'cancelThenRetry'
  }

  /**
   * Sometimes longer than a lease (LEASE_SECONDS 5, the durations stretched with a longer one:
   * settings.ts LEASE_SCALE): leases run out while nobody can write.
   */
  outageMs(downMs: number): number {
    return Math.round((500 + downMs * (this.r() < 0.3 ? 3 : 1)) * LEASE_SCALE)
  }

  /**
   * How long after an enqueue's commit Postgres is crashed: within the few milliseconds in which
   * the workers woken by its notification claim the rows, whose claims commit without waiting for
   * their WAL (sql/0007), and up to a last check or a settlement.
   */
  crashDelayMs(): number {
    return Math.floor(this.r() * this.r() * 80)
  }

  latencyMs(): number {
    return Math.floor(this.r() * MAX_LATENCY_MS)
  }

  /**
   * Answers late by tens of ms, by 1 to 3 s (a heartbeat's answer past HEARTBEAT_ANSWER_MS, within
   * the send's 3 s lease margin: a send waits for it), or by 3 to 7 s (past the margin, past the
   * 5 s lease: given back unsent, reclaimed), each stretched with a longer lease (LEASE_SCALE);
   * statements late too three times in ten.
   */
  slowDatabase(): SlowDatabase {
    const x = this.r()
    const answerMs = Math.round(
      LEASE_SCALE *
        (x < 0.35
          ? 20 + Math.floor(this.r() * 280)
          : x < 0.8
            ? 1_000 + Math.floor(this.r() * 2_000)
            : 3_000 + Math.floor(this.r() * 4_000)),
    )
    const requestMs = this.r() < 0.3 ? Math.floor(answerMs * this.r()) : 0
    return {
      everySlot: this.r() < 0.3,
      answerMs,
      requestMs,
      forMs: 1_000 + Math.floor(this.r() * 7_000),
    }
  }

  tokenRevocation(): TokenRevocation {
    const entra = this.r()
    return {
      entra: entra < 0.3 ? 'hangs' : entra < 0.6 ? '503' : 'fine',
      reason: this.r() < 0.5 ? 'expired' : 'invalid',
    }
  }

  oneOf<T>(items: readonly T[]): T {
    return items[Math.floor(this.r() * items.length)]!
  }
}

// The pause mix's senders: the named ones, MAIL_FROM's address (now and next) and none (MAIL_FROM).
const PAUSE_SENDERS = [...SENDERS, MAILBOX, NEXT_MAIL_FROM, undefined, undefined, undefined]

/**
 * One random message and its options: senders, a rejected recipient, few attempts, an expiry,
 * priorities; with `pauses`, rows without a sender or naming MAIL_FROM's, some scheduled later.
 */
function rowSpec(r: () => number, pauses = false) {
  const x = r()
  const to = x < 0.05 ? REJECTED : `r${Math.floor(r() * 1e6)}@example.com`
  const options: { maxAttempts?: number; expiresAt?: string; priority?: number; sendAt?: string } =
    {}
  if (r() < 0.12) options.maxAttempts = 1 + Math.floor(r() * 2)
  if (r() < 0.1) options.expiresAt = new Date(Date.now() + 3_000 + r() * 12_000).toISOString()
  if (r() < 0.3) options.priority = Math.floor(r() * 3) - 1
  const senders = pauses ? PAUSE_SENDERS : SENDERS
  const from = senders[Math.floor(r() * senders.length)]
  // Scheduled 1-15 s out: the owed probe may wait for such a row (its time kept by the database).
  if (pauses && r() < 0.12 && !options.expiresAt)
    options.sendAt = new Date(Date.now() + 1_000 + r() * 14_000).toISOString()
  return {
    message: { ...(from !== undefined && { from }), to, subject: 'chaos', text: 'chaos soak' },
    options,
  }
}
