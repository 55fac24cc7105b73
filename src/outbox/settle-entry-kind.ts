// The kind of a settled lease's history entry (history-kind.ts), by the branch of its last_error that words it.
import { sql } from 'kysely'
import { kindLit } from './history-kind.ts'
import { LOOKUP_TOO_EARLY_CODE } from './lookup-grace.ts'

/**
 * A lease claimed past its expiresAt whose wait to look up may not run on (its bound passed): it
 * ends as a sweep past that bound ends the row (expiry-sweep.ts), counting no attempt either
 * (lookupOnly, `past`).
 */
export const boundPassed = sql`(i.past_expiry and i.kind = 'retry' and l.verdict = 'expired')`

/**
 * The kind of a settled lease's history entry (history-kind.ts), by the branch of last_error
 * (settledLastError, settle-last-error.ts) that words it: read on the locked row `l` (its verdict;
 * `unstarted`, the row's send start before this statement) and the input `i`. A retry of an
 * unverified resend names which sends may have delivered the row; an ending that keeps an
 * interrupted send unresolved (its mark) says so; every other entry is an attempt's (a sent one's
 * implied).
 */
export const entryKind = sql`case l.verdict
    when 'retry' then case i.resent when 'both' then ${kindLit('resent_interrupted')}
                                    when 'earlier' then ${kindLit('resent')}
                                    else ${kindLit('attempt')} end
    when 'expired' then case
      when ${boundPassed} then ${kindLit('unresolved')}
      when i.kind = 'retry' and i.code = ${LOOKUP_TOO_EARLY_CODE} then ${kindLit('unresolved')}
      when i.kind = 'retry' and i.refund
      then case when i.ambiguous then ${kindLit('unresolved')} else ${kindLit('attempt')} end
      when i.kind = 'expired' and i.message is not null then ${kindLit('attempt')}
      when not i.ambiguous and (i.kind <> 'expired' or l.unstarted) then ${kindLit('attempt')}
      else ${kindLit('unresolved')} end
    -- A sent entry's is implied (history-kind.ts kindOf): not stored.
    when 'sent' then null
    when 'released' then ${kindLit('attempt')}
    -- Failed (a refused resend names the earlier send; a row no longer rendering, a lookup's 404),
    -- out of attempts, throttled out, cancelled: the mark kept, that send is named unresolved.
    else case when i.ambiguous then ${kindLit('unresolved')} else ${kindLit('attempt')} end end`
