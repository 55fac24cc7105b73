// The pending rows that send from a mailbox Graph refuses now: what status's exit 5 and /v1/stats' refusedMailboxPending count, one rule.
import { type RawBuilder, sql } from 'kysely'
import { liveRegistryEntry } from './live-registry-entry.ts'

/**
 * As an SQL expression: how many pending rows send from a mailbox paused now because Graph refuses
 * it. `paused` is the alias of PAUSED_MAILBOXES_NOW's rows (a CTE: SQL the caller writes, never a
 * value), `pending` an expression of every pending row's count in the same snapshot (the caller's
 * own). A row sends from the mailbox its sender key names (sql/0039: a message's from, a
 * template's from_address as the worker renders it, 0188), or, naming none (NULL), from MAIL_FROM:
 * a mailbox a live worker's registry entry notes as its MAIL_FROM's pause key (sql/0079; live as
 * liveRegistryEntry says, the rule that keeps that mailbox's owed probe). Each row once, though two
 * refused mailboxes be MAIL_FROMs (two releases at once). Not counted: a row whose sender only its
 * rendering can say (key '?', a from_address with placeholders), and MAIL_FROM's rows while no
 * worker is live (none sends them: status says so by itself once they are due).
 * Cost: nothing past `paused` while no pause is a refusal; else one descent of
 * email_outbox_sender_key_idx per refused mailbox, over its pending rows' entries; with a refused
 * MAIL_FROM, every keyed pending row's entry besides (email_outbox_named_sender_idx: the rows
 * naming none are `pending` less those). Index-only where the visibility map allows; never a
 * finished row.
 */
export function refusedPausePending(paused: string, pending: RawBuilder<unknown>) {
  const p = sql.raw(paused)
  // Lateral: a descent per mailbox, never a merge join reading every key before it from the start.
  return sql`((select coalesce(sum(k.n), 0) from ${p} r
                cross join lateral (select count(*) as n from mailer.email_outbox o
                                     where o.status = 'pending' and o.sender_key is not null
                                       and o.sender_key = r.mailbox) k
                where r.refused)
              + case when exists (select from ${p} r
                                   where r.refused
                                     and exists (select from mailer.workers w
                                                  where w.probe_mailbox = r.mailbox
                                                    and ${liveRegistryEntry('w')}))
                     then ${pending} - (select count(*) from mailer.email_outbox
                                         where status = 'pending' and sender_key is not null)
                     else 0 end)`
}
