// How a settled lease's last_error is worded (settleLeases): by its verdict, naming any send that may have delivered the row.
import { sql } from 'kysely'
import { CANCELLED_UNRESOLVED } from './cancel-wins.ts'
import {
  cancelledBeforeSend,
  earlierInterrupted,
  notSentBeforeExpiry,
} from './earlier-interrupted.ts'
import { expiredUnresolved } from './expired-unresolved.ts'
import { LOOKUP_TOO_EARLY_CODE } from './lookup-grace.ts'
import { endsASend } from './lookup-stop.ts'
import {
  afterMessage,
  afterWords,
  INTERRUPTED_SEND_MAY_HAVE_DELIVERED,
  THAT_SEND_MAY_HAVE_DELIVERED,
} from './may-have-delivered.ts'
import {
  EARLIER_MAY_HAVE_DELIVERED,
  lastSendMayHaveDelivered,
  resentOfLastSend,
  withoutResentNamed,
} from './resent-unverified.ts'
import { boundPassed } from './settle-entry-kind.ts'

/**
 * The suffix of an error whose send left it ambiguous: that send's, or, resent unverified
 * (Settlement resentUnverified), the earlier interrupted send's, and this one's too when it may
 * also have reached the provider. A retry of such a resend ends with it; a failure out of attempts
 * with LAST_OR_EARLIER_MAY_HAVE_DELIVERED, which also names an earlier send held unmarked.
 */
const LAST_SEND_MAY_HAVE_DELIVERED = lastSendMayHaveDelivered(sql`i.resent`)
/**
 * The suffix naming an earlier interrupted send after a failure's message: a refused unverified
 * resend's (Settlement failed, resentUnverified), or the failure of a row whose history holds one
 * (earlierInterrupted), as the retry of a resend answered for sure ends; a throttle's ending too.
 */
const EARLIER = sql.lit(EARLIER_MAY_HAVE_DELIVERED)
/**
 * 'both' (Resent) for a row whose history holds an interrupted send unmarked (earlier-interrupted.ts:
 * held, then retried through the API) and whose last send was interrupted too: that send was no
 * resend of it, yet either may have delivered the row. Read for such a failure only.
 */
const EARLIER_TOO = sql`case when ${earlierInterrupted(sql`o.id`, sql`o.last_error_code`)} then 'both' end`
/** LAST_SEND_MAY_HAVE_DELIVERED of a row out of attempts, naming an earlier interrupted send too (EARLIER_TOO). */
const LAST_OR_EARLIER_MAY_HAVE_DELIVERED = lastSendMayHaveDelivered(
  sql`coalesce(i.resent, ${EARLIER_TOO})`,
)
/**
 * As LAST_OR_EARLIER_MAY_HAVE_DELIVERED, of a row out of attempts after its lookup, or whose lookup
 * was refused for good (Settlement lookupRefused): its last send read from its history.
 */
const LOOKED_UP_MAY_HAVE_DELIVERED = lastSendMayHaveDelivered(
  sql`coalesce(${resentOfLastSend}, ${EARLIER_TOO})`,
)
/**
 * The suffix of a throttle's ending error on a row an interrupted send may have delivered: this
 * lease's (its mark), or an earlier one's its history holds unmarked (earlier-interrupted.ts),
 * read for such an ending only. It follows the throttle's message (Graph's, quoted), so in
 * parentheses, as "attempts exhausted; last error: …" ends.
 */
const INTERRUPTED_MAY_HAVE_DELIVERED = sql`case when i.ambiguous
  then ${sql.lit(afterMessage(INTERRUPTED_SEND_MAY_HAVE_DELIVERED))}
  when ${earlierInterrupted(sql`o.id`, sql`o.last_error_code`)}
  then ${EARLIER} else '' end`
/** A wait to look an interrupted send up again that would end past the row's expiresAt. */
const EXPIRES_BEFORE_LOOKUP_AGAIN = sql.lit(
  `expiresAt comes before its interrupted send can be looked up again (not in the mailbox yet)${afterWords(THAT_SEND_MAY_HAVE_DELIVERED)}`,
)

/**
 * The last counted attempt's error (`column`) of a lease past its attempts: the interrupted send's
 * (its retry, its worker's stop: a reclaim's lease_expired, or a gateway's 504 given back before a
 * claim whose worker stopped before it sent again), which the waits to look it up since (uncounted,
 * `throttled`) and the stops of its lookups' workers (endsASend) replaced on the row.
 * From the history's primary key (outbox_id, id); read for such a lease's failure only.
 */
export const exhaustedError = (column: 'error_code' | 'error') =>
  sql`(select h.${sql.raw(column)} from mailer.email_attempts h
        where h.outbox_id = i.id and ${endsASend('h')} order by h.id desc limit 1)`

/**
 * The last_error of a settled lease, read on the locked row `l` (its verdict), the input `i` and the
 * outbox row `o` as the statement found it.
 */
export const settledLastError = sql`case l.verdict
               when 'sent' then null when 'released' then o.last_error
               -- The mark is an earlier send's only on a row found expired before its send started
               -- (the last check that finds it so keeps it, sql/0018, and the lease knows); after a
               -- send, it is that send's own start, and a send answered for sure (a 500) delivered nothing.
               -- A wait given back uncounted (a throttle) that its expiresAt ended names what held
               -- the row back, as one ended by THROTTLE_DEADLINE_SECONDS does.
               when 'expired' then case
                 -- Claimed past it, its lookup held back past the bound (lookupWait): as any
                 -- interrupted send found past its expiresAt and not looked up.
                 when ${boundPassed} then ${expiredUnresolved()}
                 -- A wait to look an interrupted send up again that would end past its bound (the
                 -- row is never sent past its expiresAt): no throttle, and no lookup to come.
                 when i.kind = 'retry' and i.code = ${LOOKUP_TOO_EARLY_CODE}
                 then ${EXPIRES_BEFORE_LOOKUP_AGAIN}
                 when i.kind = 'retry' and i.refund
                 then 'still throttled at its expiresAt: ' || coalesce(i.message, '') || ${INTERRUPTED_MAY_HAVE_DELIVERED}
                 -- Its interrupted send looked up and not found (expired-interrupted.ts).
                 when i.kind = 'expired' and i.message is not null then i.message
                 -- Unsent, unmarked: an earlier interrupted send its history holds is named.
                 when not i.ambiguous and (i.kind <> 'expired' or o.send_started_at is null)
                 then ${notSentBeforeExpiry}
                 else ${expiredUnresolved()} end
               -- Its own word (cancelled-interrupted.ts); an interrupted send left unresolved is named.
               when 'cancelled' then case when i.kind = 'cancelled' and i.message is not null then i.message
                                          when i.ambiguous then ${CANCELLED_UNRESOLVED}
                                          else ${cancelledBeforeSend} end
               when 'throttled_out' then 'still throttled at the throttle deadline: ' || coalesce(i.message, '')
                                         || ${INTERRUPTED_MAY_HAVE_DELIVERED}
               -- An interrupted last send is named alike whether it went unlooked (lookups off) or
               -- its lookup could not tell.
               when 'exhausted' then 'attempts exhausted; last error: ' || case
                 when i.kind <> 'exhausted' then coalesce(i.message, '') || case when i.ambiguous then ${LAST_OR_EARLIER_MAY_HAVE_DELIVERED}
                   -- Its last send answered for sure: an interrupted send its history holds is named.
                   when ${earlierInterrupted(sql`o.id`, sql`o.last_error_code`)}
                   then ${EARLIER} else '' end
                 when i.ambiguous then coalesce(${withoutResentNamed(exhaustedError('error'))}, '') || ${LOOKED_UP_MAY_HAVE_DELIVERED}
                 else coalesce(${withoutResentNamed(exhaustedError('error'))}, '') || ' (that send was looked up and not found: not sent)' end
               -- A retry of an unverified resend names the send that may have delivered it, as its
               -- failure would: read back (resentOfLastSend) once a lookup after it cannot tell.
               when 'retry' then i.message || case when i.resent is not null then ${LAST_SEND_MAY_HAVE_DELIVERED} else '' end
               -- A refused unverified resend (Settlement resentUnverified) names the earlier send;
               -- any other failure of an unmarked row (a refusal, its template gone) an interrupted
               -- send its history holds (earlier-interrupted.ts), alike; a new hold names its own.
               -- A lookup refused for good (404) names the send it looked up, as a lookup that cannot
               -- tell does once the row is out of attempts.
               -- (CASE, not OR: the history is read only when the first arm does not hold.)
               when 'failed' then i.message || case when i.kind = 'failed' and i.resent = 'earlier'
                                                    then ${EARLIER}
                                                    when i.lookup_refused then ${LOOKED_UP_MAY_HAVE_DELIVERED}
                                                    when not i.ambiguous and i.code <> 'ambiguous_send'
                                                         and ${earlierInterrupted(sql`o.id`, sql`o.last_error_code`)}
                                                    then ${EARLIER} else '' end
               else i.message end`
