// Since when a settled row has waited uncounted: the start of the run its throttle deadline counts from.
import { sql } from 'kysely'
import { PACED_CODE } from './settle-item.ts'

/**
 * Since when the row has waited uncounted (throttled, a refused credential, a lookup asked again):
 * the first such attempt after its last other outcome, or now for a first one. The throttle
 * deadline counts from there: from creation, a row scheduled days ahead or retried through the API
 * failed at its first throttle. A failure ends a run, so a retried row starts a new one.
 * A wait for the mailbox's pacing turn (MAILBOX_RATE_PER_MINUTE, code PACED_CODE) is our own
 * schedule, not a throttle: it has no deadline (null here), neither starts a run nor ends one, and
 * a backlog longer than the deadline at the configured rate never fails its rows.
 * Read only for an uncounted retry, from the history's primary key (outbox_id, id), in id order.
 */
export const throttledSince = sql`case when i.refund and i.kind = 'retry' and i.code is distinct from ${PACED_CODE}
    then coalesce(
      (select min(a.finished_at) from mailer.email_attempts a
        where a.outbox_id = i.id and a.outcome = 'throttled'
          and a.error_code is distinct from ${PACED_CODE}
          and a.id > coalesce((select max(b.id) from mailer.email_attempts b
                                where b.outbox_id = i.id and b.outcome not in ('throttled', 'released')), 0)),
      now()) end`
