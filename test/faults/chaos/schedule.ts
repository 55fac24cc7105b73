// The harness's seeded choices during the chaos: which action when, on which worker, of what size, and the rows it enqueues.
import { pick } from './random.ts'
import { MAX_LATENCY_MS, REJECTED, SENDERS, WORKERS } from './settings.ts'

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

export type RowSpec = ReturnType<typeof rowSpec>

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
    return Array.from({ length: n }, () => rowSpec(this.r))
  }

  row(): RowSpec {
    return rowSpec(this.r)
  }

  /** Sometimes longer than a lease (LEASE_SECONDS 5): leases run out while nobody can write. */
  outageMs(downMs: number): number {
    return 500 + downMs * (this.r() < 0.3 ? 3 : 1)
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

/** One random message and its options: senders, a rejected recipient, few attempts, an expiry, priorities. */
function rowSpec(r: () => number) {
  const x = r()
  const to = x < 0.05 ? REJECTED : `r${Math.floor(r() * 1e6)}@example.com`
  const options: { maxAttempts?: number; expiresAt?: string; priority?: number } = {}
  if (r() < 0.12) options.maxAttempts = 1 + Math.floor(r() * 2)
  if (r() < 0.1) options.expiresAt = new Date(Date.now() + 3_000 + r() * 12_000).toISOString()
  if (r() < 0.3) options.priority = Math.floor(r() * 3) - 1
  return {
    message: {
      from: SENDERS[Math.floor(r() * SENDERS.length)]!,
      to,
      subject: 'chaos',
      text: 'chaos soak',
    },
    options,
  }
}
