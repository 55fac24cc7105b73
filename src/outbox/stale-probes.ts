// Probes owed for a mailbox no live worker sends from, and the due hints they keep written, cleared as CTEs of the reclaim statement.
import { sql } from 'kysely'
import { liveRegistryEntry } from './live-registry-entry.ts'

export interface StaleProbes {
  /** The reclaiming worker's own MAIL_FROM pause key ('' none): never cleared by its own reclaim. */
  ownMailbox: string
}

/**
 * CTEs for the WITH list of the reclaim (at least once per lease length: no statement of its own).
 * `stale_probes` clears the probe owed (sql/0062) for a mailbox other than the worker's own that no
 * live registry entry notes as its MAIL_FROM's (sql/0079): only a claim of a worker of that
 * MAIL_FROM ever cleared it, so a deploy that changed MAIL_FROM left it owed for good, and 0075's
 * insert trigger wrote a hint for every later row of MAIL_FROM's enqueued since. An entry is live
 * while it beat within two of its own lease lengths (sql/0084: idle, a worker beats once per lease
 * length; judged by the reclaiming worker's, a worker of a longer lease was taken for gone between
 * two beats); one that notes none (an older binary's), by two of the longest lease the configuration takes
 * (its worker may beat that seldom). An entry that
 * notes no mailbox (an older binary's, NULL) keeps every probe owed while it is live. `spent_hints`
 * deletes the hints no claim reads: past ones, or all once no probe stays owed (a hint committed
 * after this snapshot is not seen, and was written for a probe owed since: it stays). A pause a
 * cleared probe followed is lifted as the README lifts one (next_at now(): status and /metrics
 * count it no more) unless a pending row names that mailbox itself; the rows naming no sender it
 * held are the upkeep's to bring due after (former-mail-from-rows.ts).
 * Invariant: a probe is cleared only for a mailbox no live worker claims for; the own key is
 * excluded because this statement's own registration is not in its snapshot.
 * Reads mailbox_pacing_probe_owed_idx (empty unless a probe is owed) and the registry (a handful of rows).
 */
export function staleProbeClear(s: StaleProbes) {
  return sql`stale_probes as (
      update mailer.mailbox_pacing p
         set probe_owed = false, probe_id = null, probe_due_at = null,
             next_at = case when exists (select from mailer.email_outbox o
                                          where o.sender_key = p.mailbox and o.status = 'pending')
                            then p.next_at else least(p.next_at, now()) end
       where p.probe_owed and p.mailbox <> ${s.ownMailbox}::text
         and not exists (select from mailer.workers w
                          where ${liveRegistryEntry('w')}
                            and (w.probe_mailbox is null or w.probe_mailbox = p.mailbox))
      returning p.mailbox
    ), spent_hints as (
      delete from mailer.probe_due_hints h
       where h.send_at <= now()
          or not exists (select from mailer.mailbox_pacing p
                          where p.probe_owed and p.mailbox not in (select mailbox from stale_probes))
    )`
}
