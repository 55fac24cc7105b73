// The rows in play (pending and sending), the age of the oldest due pending row (database time), what pauses and pacing hold back, the pending rows past their expiresAt and the NOTIFY queue's fill, in one statement (outbox-stats.ts adds the finished rows' counts).
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import {
  type CredentialRefused,
  credentialRefusedNow,
  credentialRefusedOf,
} from './credential-refusals.ts'
import { liveRegistryEntry } from './live-registry-entry.ts'
import { PAUSED_MAILBOXES_NOW } from './paused-now.ts'
import { refusedPausePending } from './refused-pause-rows.ts'

/**
 * How far past its mailbox's pause end a row given back to that end may be due: the pause is
 * written (pauseMailbox), or read for how long it still lasts (the gate's give-back), before the
 * row's settlement, whose now() its delay counts from (settle.ts: a statement later, its batch's
 * turn in the settle queue, a row locked meanwhile asked again up to 2 s apart). Milliseconds as a
 * rule. A row given back by the gate says `mailbox_paused` and needs no skew; the one that met the
 * throttle keeps its own code, as a row a counted failure's backoff put later does, and nothing on
 * the row tells the two apart: its settlement's time is not kept, and which its last wait was
 * (uncounted or not) only its history says, a lookup per row each scrape; a send_at at the pause's
 * end to the microsecond would take the pause's end into the settlement, the send path's statement.
 * So the bound, not exactness: a row whose own backoff comes due within this skew after its
 * mailbox's pause end counts as held back while the pause stands, though its backoff holds it,
 * which ends at most this long after the pause.
 */
const GIVEN_BACK_SKEW = sql`interval '5 seconds'`

export interface LiveStats {
  pending: number
  sending: number
  /**
   * Seconds since the oldest *due* pending row became due (now() - send_at); rows scheduled in the
   * future are not lag. Null when nothing is waiting.
   */
  oldestPendingAgeSeconds: number | null
  /**
   * Pending rows not due yet because a pacing turn reserved for them (mailbox_paced) or a mailbox's
   * pause (mailbox_paused, moved to the end of their own sender's pause, or given back to it by the
   * send that met it: GIVEN_BACK_SKEW) put them later: they count in neither the due rows' age nor
   * `sending`.
   */
  heldBackPending: number
  /** Pending rows past their expiresAt: which, as past-expiry-pending.ts defines them. */
  pastExpiryPending: number
  /**
   * Sender mailboxes a provider throttle holds now (a 429's Retry-After, Graph refusing the
   * mailbox); null for a caller confined to a tenant (pauses are the database's, not a tenant's).
   */
  pausedMailboxes: number | null
  /**
   * Of pausedMailboxes, those paused because Graph refuses the mailbox (a mistyped MAIL_FROM, the
   * app not let send from it), as the pause keeps its cause (sql/0172); the others a throttle's.
   */
  pausedMailboxesRefused: number | null
  /**
   * Pending rows that send from a mailbox of pausedMailboxesRefused (refused-pause-rows.ts: its own
   * from, or none when it is a live worker's MAIL_FROM): what status's exit 5 for a refusal counts;
   * null for a caller confined to a tenant.
   */
  refusedMailboxPending: number | null
  /**
   * The live workers whose registry entry notes the provider refusing their credential (Entra's
   * AADSTS code, sql/0198), their codes and since when: every send of theirs waits; null for a
   * caller confined to a tenant (the workers are the database's, not a tenant's).
   */
  credentialRefused: CredentialRefused | null
  /** Fill level (0..1) of the server's NOTIFY queue; near 1, NOTIFYing commits start to fail. */
  notificationQueueUsage: number
}

/**
 * The rows still in play, read through the partial indexes that hold only them
 * (email_outbox_claim_idx, email_outbox_sending_idx): cost O(pending + sending), whatever the
 * number of finished rows the table keeps; the held-back ones among the pending rows not due
 * (those read from the heap too), the mailboxes paused (mailer.mailbox_pacing: two rows per
 * mailbox used) and, while Graph refuses one, the pending rows that send from it
 * (refused-pause-rows.ts: their index entries); and the NOTIFY queue's fill. One statement, cheap
 * enough for every metrics scrape.
 *
 * A mailbox is paused as every reader of a pause says (PAUSED_MAILBOXES_NOW, paused-now.ts): the
 * gate's, status's PAUSED count and this one agree.
 */
export async function liveStats(
  db: Kysely<Database>,
  scopeTenant: string | null,
): Promise<LiveStats> {
  const { rows } = await sql<{
    pending: string
    sending: string
    oldest: number | null
    held: string
    past_expiry: string
    paused: string | null
    refused: string | null
    refused_pending: string | null
    usage: number
    cred_workers: string
    cred_codes: string[]
    cred_since: Date | null
    cred_serving: string
    cred_serves_until: Date | null
  }>`
    with paused as materialized (${PAUSED_MAILBOXES_NOW})
    select
      -- First: pg_stat_activity keeps a statement's first 1 KB (track_activity_query_size).
      pg_notification_queue_usage()::float8 as usage,
      pending.n as pending,
      (select count(*) from mailer.email_outbox
        where status = 'sending' and (${scopeTenant}::text is null or tenant = ${scopeTenant})) as sending,
      (select extract(epoch from now() - min(send_at))::float8 from mailer.email_outbox
        where status = 'pending' and send_at <= now()
          and (${scopeTenant}::text is null or tenant = ${scopeTenant})) as oldest,
      -- Held: due by the furthest turn or pause end (plus GIVEN_BACK_SKEW) at most, so rows scheduled
      -- past it are left in email_outbox_claim_idx (pending; send_at its second key), and only those
      -- before are read. A row tried (a code) is given back to its sender's pause end plus the skew:
      -- its own (sender_key) or, naming none, a live worker's MAIL_FROM (sql/0079, as
      -- refused-pause-rows.ts reads it); an untried row is held only up to the end itself.
      (select count(*) from mailer.email_outbox o
        where o.status = 'pending' and o.send_at > now()
          and o.send_at <= (select max(m.next_at) from mailer.mailbox_pacing m) + ${GIVEN_BACK_SKEW}
          and (${scopeTenant}::text is null or o.tenant = ${scopeTenant})
          and (o.last_error_code in ('mailbox_paced', 'mailbox_paused')
               or exists (select from paused p where p.mailbox = o.sender_key and p.next_at >= o.send_at)
               or o.last_error_code is not null
                  and exists (select from paused p
                               where p.next_at + ${GIVEN_BACK_SKEW} >= o.send_at
                                 and (p.mailbox = o.sender_key
                                      or o.sender_key is null
                                         and exists (select from mailer.workers w
                                                      where w.probe_mailbox = p.mailbox
                                                        and ${liveRegistryEntry('w')}))))) as held,
      -- Past their expiresAt (email_outbox_expiring_idx, sql/0022: the pending rows with one, a
      -- range up to now()); few, as the sweep ends them.
      (select count(*) from mailer.email_outbox
        where status = 'pending' and expires_at <= now()
          and (${scopeTenant}::text is null or tenant = ${scopeTenant})) as past_expiry,
      (select count(*) from paused) as paused,
      (select count(*) from paused where refused) as refused,
      -- A tenant's count is no count of every pending row: a tenant reads no pause.
      case when ${scopeTenant}::text is null
           then ${refusedPausePending('paused', sql`pending.n`)} end as refused_pending,
      cred.workers as cred_workers, cred.codes as cred_codes, cred.since as cred_since,
      cred.serving as cred_serving, cred.serves_until as cred_serves_until
      -- In FROM, after the list (the 1 KB above): read once, for the column and the count.
      from (select count(*) as n from mailer.email_outbox
             where status = 'pending' and (${scopeTenant}::text is null or tenant = ${scopeTenant})) pending,
           ${credentialRefusedNow('cred')}
  `.execute(db)
  const r = rows[0]
  return {
    pending: Number(r?.pending ?? 0),
    sending: Number(r?.sending ?? 0),
    oldestPendingAgeSeconds: r?.oldest == null ? null : Math.max(0, r.oldest),
    heldBackPending: Number(r?.held ?? 0),
    pastExpiryPending: Number(r?.past_expiry ?? 0),
    pausedMailboxes: scopeTenant === null ? Number(r?.paused ?? 0) : null,
    pausedMailboxesRefused: scopeTenant === null ? Number(r?.refused ?? 0) : null,
    refusedMailboxPending: scopeTenant === null ? Number(r?.refused_pending ?? 0) : null,
    credentialRefused:
      scopeTenant === null && r
        ? credentialRefusedOf({
            workers: r.cred_workers,
            codes: r.cred_codes,
            since: r.cred_since,
            serving: r.cred_serving,
            servesUntil: r.cred_serves_until,
          })
        : null,
    notificationQueueUsage: r?.usage ?? 0,
  }
}
