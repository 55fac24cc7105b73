// The reclaim's row decisions: SQL fragments, read on the locked row `o`, that say how an expired lease's row ends (pending, failed out of attempts, failed expired, cancelled) and which words name its stop.
import { sql } from 'kysely'
import { cancelAwaitsLookup } from './cancel-wins.ts'
import { expiredUnresolved } from './expired-unresolved.ts'

/**
 * The last_error of a row past its expiresAt whose interrupted send's lookup lost its worker
 * LOOKUP_STOPS_IN_A_ROW times: the words of any such row ended unlooked, and why.
 */
export const EXPIRED_LOOKUP_STOPPED = expiredUnresolved(' (the worker looking it up stopped)')

/**
 * Worker stops in a row on a row (no other outcome between, uncounted waits aside) at which a
 * lookup of its interrupted send past its attempts or its expiresAt, whose claim counts nothing,
 * fails it: every stop counts, whatever it interrupted (that send, a lookup, or a claim before it
 * sent), since each is a worker the row may have killed, and a row that kills its workers before
 * sending loops as surely as one that kills its lookups.
 */
const LOOKUP_STOPS_IN_A_ROW = 3

/** The reclaim's decisions, for the row `o` its UPDATE has locked (reclaim-statement.ts). */
export function reclaimDecisions(p: { defaultMaxAttempts: number; lookups?: boolean }) {
  // Read on the locked row version the UPDATE writes.
  const cancelled = sql<boolean>`(o.cancel_requested_at is not null and o.send_started_at is null)`
  const maxAttempts = sql`coalesce(o.max_attempts, ${p.defaultMaxAttempts})`
  const pastAttempts = sql<boolean>`(o.attempts > ${maxAttempts})`
  const lookups = sql<boolean>`${p.lookups === true}::boolean`
  // A lookup's worker that stops leaves the row to be looked up again, but not without end: a
  // crash loop ends failed after LOOKUP_STOPS_IN_A_ROW stops with no other outcome between them
  // (uncounted waits aside; every lease_expired entry, a stop before a send's included), as a
  // counted one does at max_attempts. History's primary key
  // (outbox_id, id); read for a lease past its attempts, or a cancel's lookup, only.
  // A claim of a pending row whose cancel was requested with an interrupted send's mark.
  const cancelLookup = cancelAwaitsLookup
  const stoppedBefore = sql<boolean>`((select count(*) from mailer.email_attempts h
      where h.outbox_id = o.id and h.outcome = 'lease_expired'
        and h.id > coalesce((select max(b.id) from mailer.email_attempts b where b.outbox_id = o.id
                               and b.outcome not in ('lease_expired', 'throttled', 'released')), 0))
      >= ${LOOKUP_STOPS_IN_A_ROW - 1})`
  // Its lookups end: cancelled, its mark kept (read for a cancel's lookup only).
  const lookupsEnd = sql<boolean>`(${cancelLookup} and not (${lookups} and not ${stoppedBefore}))`
  // The claim only looked the row's interrupted send up (lease.ts lookupOnly), as it noted
  // (sql/0162): it counted none. Past the max_attempts and for a cancel's lookup the row says so as
  // well (above); past the expiresAt only the claim could, since a counted claim taken before it
  // whose send started leaves the same row. NULL (a lease taken before 0162): judged as above.
  const lookupOnly = sql<boolean>`coalesce(o.lease_lookup_only, false)`
  // A lookup past the expiresAt whose workers keep stopping: ended as its claim would end it past
  // its bound (settle.ts), expired naming the send (settle-last-error.ts); its count no longer
  // bounds the stops. One past its max_attempts as well ends so too: its expiresAt comes first, for
  // its settlement (lease-outcome.ts) and the sweep alike. Past its max_attempts only, it fails out
  // of them (below).
  const expiredLookupEnds = sql<boolean>`(${lookupOnly} and not ${cancelLookup} and ${stoppedBefore}
      and (not ${pastAttempts} or coalesce(o.expires_at <= now(), false)))`
  // Such a claim, or with lookups on any claim of a row with an interrupted send (which looks it up
  // before it sends again), under which no send started: the row's mark is still that send's, which
  // its history entry (a retry, a stop, a 504 given back) followed; a send's start is noted anew
  // (start_sends). Named a lookup's stop, not a send's (lookup-stop.ts); a counted claim's stays
  // counted. A machine of a release before lookups past the max_attempts (5594ced9) claims a row
  // past them as any interrupted send and, not found, sends it again: the claim notes it
  // lookup-only all the same, and that send, its start later than every entry, is named a send.
  // Read on a marked row's lease only (the history's primary key, outbox_id, id); no entry: a send.
  const noSendStarted = sql<boolean>`(o.send_started_at <= (
      select max(h.finished_at) from mailer.email_attempts h where h.outbox_id = o.id))`
  const lookupStopped = sql<boolean>`((${lookupOnly} or ${lookups}) and ${noSendStarted})`
  // With lookups off, a counted claim of such a row resends at once (AMBIGUOUS_SEND_POLICY=resend)
  // or holds it: stopped so (rendering, its token held it), its worker had not sent it again, and
  // noSendStarted, read after lookupStopped, names that stop (lookup-stop.ts), not one "during the
  // send" as the mark, an earlier send's, would have it; that send stays unresolved, marked.
  return {
    cancelled,
    maxAttempts,
    pastAttempts,
    lookups,
    cancelLookup,
    stoppedBefore,
    lookupsEnd,
    lookupOnly,
    expiredLookupEnds,
    lookupStopped,
    noSendStarted,
  }
}
