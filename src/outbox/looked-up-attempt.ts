// The attempt an interrupted send was made in: what the history entry of a claim or sweep that only looks that send up (or names it) numbers.
import { type RawBuilder, sql } from 'kysely'

/**
 * The attempt whose interrupted send the row `id`, with `attempts` counted (after any give-back),
 * keeps the mark of: the number of an entry that only looks that send up or names it (lease.ts
 * lookupOnly: its settlement, the reclaim of a cancel's lookup; the expiry sweep's end of a marked
 * row), as that send's own outcome. The row's attempts, unless that send was given back uncounted:
 * a gateway's 504 (Graph may have taken the message) is a throttle, its entry `throttled` with its
 * send's start and numbered attempts + 1, one above the count its give-back left. Only entries
 * since the row's last final one count: a retry through the API restarts the count and writes
 * none. Read for such entries only, from the history's primary key (outbox_id, id).
 */
export const lookedUpAttempt = (id: RawBuilder<unknown>, attempts: RawBuilder<unknown>) =>
  sql<number>`(${attempts} + (exists (select from mailer.email_attempts h
      where h.outbox_id = ${id} and h.attempt = ${attempts} + 1
        and h.outcome = 'throttled' and h.http_status = 504 and h.started_at is not null
        and h.id > coalesce((select max(f.id) from mailer.email_attempts f
                              where f.outbox_id = ${id}
                                and f.outcome in ('sent', 'failed', 'expired', 'cancelled')), 0)))::int)`
