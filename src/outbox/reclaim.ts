// reclaimExpired: crash recovery, the reclaim statement (reclaim-statement.ts) run and its answer read: the rows whose lease ran out, how each ended, when the next is due, and what the beat, sweep and stale probes it carries did.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'
import type { Swept } from './expiry-sweep.ts'
import { type ReclaimParams, reclaimStatement } from './reclaim-statement.ts'
import type { BeatResult } from './registry-beat.ts'

interface Reclaimed {
  id: string
  status: 'pending' | 'failed' | 'cancelled'
  /** The dead holder had started the send: the next attempt must resolve the ambiguity. */
  ambiguous: boolean
  /** Failed with code expired: a lookup past its expiresAt whose workers kept stopping. */
  expired?: true
}

/** A row the reclaim failed, named for its one log line as a settled row is (ids, never addresses). */
interface FailedRow {
  id: string
  tenant: string
  /** As its history entry numbers it (a lookup's: the send it looked up). */
  attempt: number
  correlationId: string | null
  /** lease_expired: out of attempts; expired: a lookup past its expiresAt whose workers kept stopping. */
  code: 'lease_expired' | 'expired'
}

export interface ReclaimResult {
  rows: Reclaimed[]
  /** The rows of `rows` it failed, in id order. */
  failed: FailedRow[]
  /**
   * Milliseconds (database time) until the earliest lease still running ends, or null when no row
   * is in flight: no lease taken after this statement can end sooner than LEASE_SECONDS from now,
   * so the next reclaim is due at the lesser of the two.
   */
  nextExpiryMs: number | null
  /** Pending rows past their expiresAt that the statement failed (with `sweep`), in id order. */
  swept: Swept[]
  /** With `beat`: what it met (the worker's entry's key after it). */
  beat?: BeatResult
  /** With `staleProbes`: how many owed probes it cleared (mailboxes no live worker sends from). */
  staleProbes?: number
}

/**
 * Returns expired `sending` rows to `pending` (or `failed` when attempts are exhausted), with history.
 * A row whose cancel was recorded (202) before its send started is cancelled here: its worker,
 * which was to cancel it, is gone, and out of attempts it would otherwise end failed, open to a
 * retry that sends what was cancelled. A row claimed only to look its interrupted send up, its
 * cancel requested (lease.ts: lookupOnly), gives its claim's count back and waits to be looked up
 * again, with lookups on and within LOOKUP_STOPS_IN_A_ROW; else it is cancelled, delivery unknown:
 * the cancel was asked for, and never ends `failed`. One claimed so past its expiresAt (as its
 * claim noted: sql/0162) gives its count back too, its entry numbered as the send it looks up, and
 * waits pending (to be looked up, or expired by a claim or the sweep); at LOOKUP_STOPS_IN_A_ROW
 * it fails expired naming that send. A lookup's stop names no send (lookup-stop.ts: the failure
 * read from the history after it names the send it looked up).
 * send_started_at is kept as the evidence that a send may have reached the provider.
 * Reads every in-flight row once (email_outbox_sending_idx), for both the expired ones and the next
 * end; SKIP LOCKED so concurrent reclaimers never wait.
 * Also reads when the next reclaim is due (the earliest end among the leases still running, from
 * the statement's snapshot: rows it reclaims, or another reclaimer holds, have ended and are left
 * out), with `beat`, upserts the worker's registry entry, with `sweep` fails pending rows past
 * their expiresAt (expiry-sweep.ts), and with `staleProbes` clears the probes owed for mailboxes no
 * live worker sends from (stale-probes.ts): an idle worker's one statement per lease length.
 */
export async function reclaimExpired(
  db: Kysely<Database>,
  p: ReclaimParams,
): Promise<ReclaimResult> {
  const sent = p.beat?.leaseKey ?? null
  const { rows } = await reclaimStatement(p).execute(db)
  // The one row of kind 'next' carries the next end; the one of kind 'beat', the entry's key.
  const beat = rows.find((r) => r.kind === 'beat')
  return {
    ...(beat ? { beat: { sent, entry: (beat.status as string | null) ?? null } } : {}),
    rows: rows
      .filter((r) => r.kind === 'reclaimed')
      .map(({ id, status, ambiguous, code }) => ({
        id,
        status,
        ambiguous,
        ...(code === 'expired' && { expired: true as const }),
      })),
    failed: rows
      .filter((r) => r.kind === 'reclaimed' && r.status === 'failed')
      .map((r) => ({
        id: r.id,
        tenant: r.tenant ?? '',
        attempt: r.attempt ?? 0,
        correlationId: r.correlation_id,
        code: r.code === 'expired' ? ('expired' as const) : ('lease_expired' as const),
      }))
      .sort((a, b) => Number(BigInt(a.id) - BigInt(b.id))),
    nextExpiryMs: rows.find((r) => r.kind === 'next')?.next_ms ?? null,
    ...(p.staleProbes ? { staleProbes: rows.filter((r) => r.kind === 'stale').length } : {}),
    swept: rows
      .filter((r) => r.kind === 'swept')
      .map((r) => ({
        id: r.id,
        status: r.status === 'cancelled' ? ('cancelled' as const) : ('failed' as const),
        tenant: r.tenant ?? '',
        attempt: r.attempt ?? 0,
        correlationId: r.correlation_id,
      }))
      .sort((a, b) => Number(BigInt(a.id) - BigInt(b.id))),
  }
}
