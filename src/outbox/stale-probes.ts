// Probes owed for a mailbox no live worker sends from, and the due hints they keep written, cleared as CTEs of the reclaim statement.
import { sql } from 'kysely'

export interface StaleProbes {
  /** The reclaiming worker's own MAIL_FROM pause key ('' none): never cleared by its own reclaim. */
  ownMailbox: string
  /** An entry that beat within this long is a live worker's (status's: two lease lengths). */
  liveSeconds: number
}

/**
 * CTEs for the WITH list of the reclaim (at least once per lease length: no statement of its own).
 * `stale_probes` clears the probe owed (sql/0062) for a mailbox other than the worker's own that no
 * live registry entry notes as its MAIL_FROM's (sql/0079): only a claim of a worker of that
 * MAIL_FROM ever cleared it, so a deploy that changed MAIL_FROM left it owed for good, and 0075's
 * insert trigger wrote a hint for every later row of MAIL_FROM's enqueued since. An entry that
 * notes none (an older binary's, NULL) keeps every probe owed while it beats. `spent_hints`
 * deletes the hints no claim reads: past ones, or all once no probe stays owed (a hint committed
 * after this snapshot is not seen, and was written for a probe owed since: it stays).
 * Invariant: a probe is cleared only for a mailbox no live worker claims for; the own key is
 * excluded because this statement's own registration is not in its snapshot.
 * Reads mailbox_pacing_probe_owed_idx (empty unless a probe is owed) and the registry.
 */
export function staleProbeClear(s: StaleProbes) {
  return sql`stale_probes as (
      update mailer.mailbox_pacing p
         set probe_owed = false, probe_id = null, probe_due_at = null
       where p.probe_owed and p.mailbox <> ${s.ownMailbox}::text
         and not exists (select from mailer.workers w
                          where w.last_heartbeat_at >= now() - make_interval(secs => ${s.liveSeconds}::float8)
                            and (w.probe_mailbox is null or w.probe_mailbox = p.mailbox))
      returning p.mailbox
    ), spent_hints as (
      delete from mailer.probe_due_hints h
       where h.send_at <= now()
          or not exists (select from mailer.mailbox_pacing p
                          where p.probe_owed and p.mailbox not in (select mailbox from stale_probes))
    )`
}
