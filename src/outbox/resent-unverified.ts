// The words naming which send may have delivered a row an unverified resend left failed: that send, the interrupted one before it, or both; read from the settlement, or from the row's history.
import { type RawBuilder, sql } from 'kysely'
import {
  byKind,
  kindIn,
  kindIs,
  kindUnknown,
  OLD_BOTH,
  OLD_DURING_THE_SEND,
  OLD_EARLIER,
  OLD_LOOKUP_REFUSED,
  OLD_MAY_HAVE_DELIVERED,
  OLD_UNKNOWN_WHETHER_DELIVERED,
} from './history-kind.ts'
import { endsASend, stoppedLookingUp } from './lookup-stop.ts'
import {
  afterMessage,
  BOTH_SENDS_MAY_HAVE_DELIVERED,
  EARLIER_SEND_MAY_HAVE_DELIVERED,
  THAT_SEND_MAY_HAVE_DELIVERED,
} from './may-have-delivered.ts'
import { AMBIGUOUS_CODES } from './send-verdict.ts'

/**
 * Which send may have delivered a row whose last send was a resend of an interrupted earlier send,
 * not looked up (no lookup, or none that could tell; AMBIGUOUS_SEND_POLICY=resend): 'earlier' when
 * the resend was answered for sure (a 500, a refusal: it delivered nothing), 'both' when it may have
 * reached the provider too; null for a send that was no such resend.
 */
export type Resent = 'earlier' | 'both' | null

/** The suffix naming the earlier interrupted send: the resend after it was answered for sure. */
export const EARLIER_MAY_HAVE_DELIVERED = afterMessage(EARLIER_SEND_MAY_HAVE_DELIVERED)
/** The suffix naming the resend and the interrupted send before it: the resend was interrupted too. */
const BOTH_MAY_HAVE_DELIVERED = afterMessage(BOTH_SENDS_MAY_HAVE_DELIVERED)

/**
 * The suffix of a failed row's error whose last send may have delivered it, by `resent`
 * (Resent): the earlier interrupted send, both, or (null) that send itself. A retry of an
 * unverified resend carries it too (settle-last-error.ts), 'earlier' or 'both': the row's failure
 * after a lookup that cannot tell reads it back from that entry (resentOfLastSend), as only that
 * settlement knew whether its send was a resend (a lookup that found nothing, which no entry
 * records, leaves an earlier interrupted send resolved and its next send no resend).
 */
export const lastSendMayHaveDelivered = (resent: RawBuilder<unknown>) => sql`case ${resent}
  when 'earlier' then ${sql.lit(EARLIER_MAY_HAVE_DELIVERED)}
  when 'both' then ${sql.lit(BOTH_MAY_HAVE_DELIVERED)}
  else ${sql.lit(afterMessage(THAT_SEND_MAY_HAVE_DELIVERED))} end`

/**
 * Of a history entry `alias`: the Resent its settlement recorded, by its kind (history-kind.ts),
 * or, an older binary's, named at its error's end; else null.
 */
const resentNamed = (alias: string) => {
  const h = sql.ref(alias)
  return sql<Resent>`case
  when ${kindUnknown(alias)} then case
    when right(${h}.error, ${sql.lit(OLD_BOTH.length)}) = ${sql.lit(OLD_BOTH)} then 'both'
    when right(${h}.error, ${sql.lit(OLD_EARLIER.length)}) = ${sql.lit(OLD_EARLIER)} then 'earlier' end
  when ${kindIs(alias, 'resent_interrupted')} then 'both'
  when ${kindIs(alias, 'resent')} then 'earlier' end`
}

/**
 * A Postgres regular expression of the suffixes a retry of an unverified resend ends with: in this
 * release's words, or in the words earlier releases stored (history-kind.ts), kind or none.
 */
const RESENT_NAMED_AT_END = `(${[
  ...new Set([EARLIER_MAY_HAVE_DELIVERED, BOTH_MAY_HAVE_DELIVERED, OLD_EARLIER, OLD_BOTH]),
]
  .map((s) => s.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&'))
  .join('|')})$`

/**
 * `error` (an entry's, evaluated once) without the words a retry of an unverified resend ended it
 * with: the failure read from it names the send itself (lastSendMayHaveDelivered, or "looked up and
 * not found"), once.
 */
export const withoutResentNamed = (error: RawBuilder<unknown>) =>
  sql<string>`regexp_replace(${error}, ${sql.lit(RESENT_NAMED_AT_END)}, '')`

/**
 * Of a history entry `alias`: a send that may have reached the provider and was never answered, as
 * its settlement judged it (send-verdict.ts: the codes, a gateway's 502/504, counted or given back
 * uncounted as a throttle), a worker stopped during it (a reclaim's lease_expired), or an ending
 * that named such a send (its mark kept).
 */
const interrupted = (alias: string) => {
  const h = sql.ref(alias)
  // Never null (a code, a status or an error may be): its negation is read too.
  return sql<boolean>`coalesce((${h}.outcome in ('retry', 'throttled')
                                and (${h}.error_code = any(${[...AMBIGUOUS_CODES]}::text[])
                                     or ${h}.http_status in (502, 504)))
    or ${byKind(
      alias,
      kindIn(alias, ['stopped_during_send', 'unresolved', 'resent', 'resent_interrupted']),
      sql<boolean>`((${h}.outcome = 'lease_expired' and ${h}.error like ${sql.lit(`%${OLD_DURING_THE_SEND}%`)})
                    or ${h}.error like ${sql.lit(`%${OLD_MAY_HAVE_DELIVERED}%`)}
                    or (${h}.outcome = 'cancelled' and ${h}.error like ${sql.lit(`%${OLD_UNKNOWN_WHETHER_DELIVERED}`)})
                    or (${h}.outcome = 'failed' and ${h}.error like ${sql.lit(`${OLD_LOOKUP_REFUSED}%`)}))`,
    )}, false)`
}

/**
 * Of the outbox row `id`: the last entry of its history (before entry id `before`, when given) that
 * ends a send or a stop (waits and give-backs aside, but not a send's own throttle: a 504 given back
 * uncounted, which has its send's start; a lookup's stop aside, which sent nothing) is an
 * interrupted send (above): the send after it, a resend of it unless a lookup between found nothing
 * (which leaves no entry), may not have been the only one to deliver the row. From the history's
 * primary key (outbox_id, id).
 */
export const interruptedSendBefore = (id: RawBuilder<unknown>, before?: RawBuilder<unknown>) =>
  sql<boolean>`exists (
        select 1 from (select p.outcome, p.error_code, p.http_status, p.error, p.kind from mailer.email_attempts p
                        where p.outbox_id = ${id} ${before ? sql`and p.id < ${before}` : sql``}
                          and (p.outcome not in ('throttled', 'released') or p.started_at is not null)
                          and not ${stoppedLookingUp('p')}
                        order by p.id desc limit 1) p
         where ${interrupted('p')})`

/**
 * Resent (above) of the last send (endsASend: a retry, a lease_expired but a lookup's stop, a
 * gateway's 504 given back) in the history of a row `i` out of attempts after its lookup could not
 * tell (settle-item.ts: exhausted, its mark kept), whose settlement no longer knows it (the row
 * waited between, lookups on: settle-item.ts lookUpFirst), or failed as its lookup was refused for
 * good (settle-item.ts lookupRefused), whose settlement never knew it.
 * A retry names it at its end (lastSendMayHaveDelivered): read so. Otherwise (an older binary's
 * entry): a mark that outlived a send answered for sure is an earlier send's, as only an unverified
 * resend keeps it. A worker stopped during the send (lease_expired) named nothing: its send is taken
 * for a resend when the send before it (the entry before, waits and give-backs aside, but not a
 * send's own throttle: a 504 given back uncounted, which has its send's start) was interrupted too,
 * or named an earlier one; a lookup between that found nothing, which leaves no entry, would have
 * made it none. A lookup whose worker stopped sent nothing: its entry is neither the last send nor
 * the one before (a 504's send given back, last, names itself unless its words say more). From the
 * history's primary key (outbox_id, id); read for such a failure only.
 */
export const resentOfLastSend = sql<Resent>`(select coalesce(${resentNamed('e')}, case
      when e.outcome = 'retry' and not ${interrupted('e')} then 'earlier'
      when e.outcome = 'lease_expired' and ${interrupted('e')}
           and ${interruptedSendBefore(sql`i.id`, sql`e.id`)} then 'both' end)
    from (select h.id, h.outcome, h.error_code, h.http_status, h.error, h.kind from mailer.email_attempts h
           where h.outbox_id = i.id and ${endsASend('h')} order by h.id desc limit 1) e)`
