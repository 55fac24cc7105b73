// The grace after an interrupted send during which a mailbox lookup's "not found" means "look again later", in database time.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

/**
 * Graph's sendMail is asynchronous: its 202 may come before the store has filed the message where
 * a lookup finds it (graph.md §4: "a lookup right after a crash can miss a message still in
 * flight … re-check after a grace period before resending"). A send Graph's gateway answered 504
 * (Retry-After: often 1 s) or whose connection broke is retried after RETRY_BASE_SECONDS (10 s)
 * or sooner, and was looked up that soon: a "not found" then sent it a second time. Until this
 * long after the interrupted send's deadline (the last moment its request could reach Graph:
 * lookupGraceLeftMs), "not found" waits (uncounted) to ask again;
 * past it, it means "not sent". Counted from the start, a send that timed out (Graph slow to take
 * it, and so to file it) was looked up a retry delay after its deadline and sent again. Short:
 * every row whose send really was lost waits it out before it is resent.
 */
export const LOOKUP_GRACE_SECONDS = 30

/**
 * How long past its expiresAt, beyond the lookup grace, a row may still wait (pending, its mark
 * kept, never sent) to look its interrupted send up: a lookup too early (the grace counts from the
 * send's deadline, which may fall up to a request timeout past the expiresAt), or held back by its
 * mailbox's pause, a throttle, a failed request. An hour: the longest Retry-After the transport
 * honours (MAX_RETRY_AFTER_MS), so one whole pause of the mailbox is waited out; past it the row's
 * end matters more than the answer, and it fails expired (settle.ts) naming the send
 * (settle-last-error.ts). Not a setting, as that cap is not: shorter, one pause would end a row its
 * lookup was about to answer; longer, it would wait for no pause the transport sets
 * (test/unit/graph-outcome.test.ts ties the two).
 */
export const PAST_EXPIRY_LOOKUP_LIMIT_SECONDS = 3600

/**
 * How long past its expiresAt a row keeping an interrupted send's mark may wait for that send's
 * lookup, with a worker's lookup grace (LOOKUP_GRACE_SECONDS unless a test shortens it): its claim's
 * waits are bounded there (settle.ts), and the expiry sweep ends it there unclaimed (expiry-sweep.ts).
 */
export const lookupPastExpirySeconds = (graceSeconds = LOOKUP_GRACE_SECONDS): number =>
  graceSeconds + PAST_EXPIRY_LOOKUP_LIMIT_SECONDS

/** The code of a row waiting (uncounted, its mark kept) to be looked up again once the grace is out. */
export const LOOKUP_TOO_EARLY_CODE = 'lookup_too_early'

/**
 * Milliseconds (database time) until `graceSeconds` have passed since the lease's row's interrupted
 * send could last have reached the provider, 0 once they have; null when the lease is no longer
 * held (its last check refuses it anyway). That moment is the send's deadline, send_deadline_at:
 * its start (its send_started_at, kept through the retry or reclaim) plus the request timeout of
 * the process whose last check recorded that start, noted by that check (sql/0078); its request's
 * deadline runs from before the check (send-attempt.ts), so no byte of it leaves later. Not the
 * registry's word (sql/0070) on the worker a later history entry names: a reclaim names whoever
 * holds the row's lease key by then, and a worker whose entry was lost claims under its key until
 * its next beat finds another drew it (lease-key.ts beaten), so a send begun after that draw was
 * timed by the other's timeout, which may be shorter. A deadline no later than the start is not
 * that start's (an older binary's start leaves the column as it was). Not noted (an older binary's
 * send, a start the file transport's claim recorded), the moment is the later of the start plus
 * `timeoutSeconds` (this worker's timeout) and the end of the attempt the send was made in: the
 * first history entry after the start other than a wait given back uncounted (`throttled`: a later
 * lookup's, or a send answered 502/504, whose request had ended). The worker that made it may have
 * had a longer timeout (GRAPH_REQUEST_TIMEOUT_SECONDS shortened across a restart), but its request
 * ended before that entry: settled after it timed out or was answered, or reclaimed once its lease
 * ended, which a send never outlives (it starts only with its timeout of lease left); that end may
 * come up to LEASE_SECONDS minus the timeout after the deadline (a crash), the wait a noted
 * deadline spares. Reads one row by primary key, its history by email_attempts_pkey (outbox_id, id)
 * only when no deadline is noted.
 */
export async function lookupGraceLeftMs(
  db: Kysely<Database>,
  lease: { id: string; token: string },
  graceSeconds: number,
  timeoutSeconds: number,
): Promise<number | null> {
  // greatest() skips a NULL: a row with no entry after its start counts from this worker's
  // timeout alone. The sub-select runs only when the deadline is not noted (coalesce).
  const { rows } = await sql<{ left_ms: number }>`
    select greatest(0, extract(epoch from
             coalesce(case when o.send_deadline_at > o.send_started_at then o.send_deadline_at end,
                      greatest(o.send_started_at + make_interval(secs => ${timeoutSeconds}),
                               (select h.finished_at from mailer.email_attempts h
                                 where h.outbox_id = o.id and h.finished_at >= o.send_started_at
                                   and h.outcome <> 'throttled'
                                 order by h.id limit 1)))
             + make_interval(secs => ${graceSeconds}) - now()) * 1000)::float8 as left_ms
      from mailer.email_outbox o
     where o.id = ${lease.id} and o.lease_token = ${lease.token} and o.status = 'sending'
       and o.send_started_at is not null`.execute(db)
  return rows[0]?.left_ms ?? null
}
