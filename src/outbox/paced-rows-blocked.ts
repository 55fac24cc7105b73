// The pacing turns reserved before a send block began (a token served then) given up, when no live worker can send (each refused, no cached token serving): the rows sent back to them due and named by the block.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { entryCanSend } from './entry-can-send.ts'
import { liveRegistryEntry, liveRegistryEntryEnd } from './live-registry-entry.ts'
import { PACED_CODE } from './settle-item.ts'
import { writingStorable } from './storable-in-encoding.ts'
import { WAITING_ROWS_PER_MARK } from './waiting-rows.ts'

/**
 * While a block stands (a refused credential: no send can go, whatever the mailbox), a turn
 * reserved for a row is one no row can use. Drops every mailbox's horizon of reserved turns
 * ('queue ' || mailbox, mailbox-pacing.ts reservePacing), as a changed rate does (pacing-rate.ts),
 * and makes up to `limit` pending rows given back to those turns (PACED_CODE, not due yet; turns
 * soonest first) due now, named by the block (Entra's code and first line) as the rows it met are.
 * Such a row said "sends at MAILBOX_RATE_PER_MINUTE; due at the turn reserved for it", was counted
 * held back by pacing, not waiting on the refusal, and kept that until a pass found it due after
 * its turn (the block's pass names due rows only, waiting-rows.ts). Once a token comes they take
 * their mailbox's turns again from then, not after the horizon the block left unused.
 * Only when the refusal is everyone's (`everyone`): every live registry entry but `workerId`'s own
 * (its worker knows it is refused before its note may have landed) notes a refusal (sql/0198,
 * live-registry-entry.ts) and no cached token serving its sends (sql/0202: none noted, or its use
 * past). A turn another machine reserved with a working credential, or with a token that still
 * serves after its refresh was refused (the common first sign of an expired secret, 10 minutes
 * before the token's end), is one it sends at: dropped, its rows carried this worker's refusal and
 * the mailbox could send above the rate for a moment. Such a machine's turns are given up once its
 * token's use has passed, read in database time: no note needed then. An older binary's entry notes
 * no refusal: while one is live, nothing is done (the rows keep their turns, named once a refusal
 * meets them after it); one of a release before 0202 notes a refusal with no token's end, read as
 * unable to send (as every refused entry was read before).
 * Uncounted: attempts and history untouched. Read as stats' held-back count reads paced rows: not
 * due, up to the furthest turn (email_outbox_claim_idx: pending; send_at its second key). Rows
 * another transaction holds are skipped (each is named by a pass once due). The registry is a
 * handful of rows, read whole once (an InitPlan: when not everyone's, no outbox row is read).
 * Returns whether it acted and the rows it named; when not, `endsInMs` (database time): in how
 * long, absent a beat meanwhile, no other entry would still read as able to send, each by the
 * earlier of its two leases past its last beat and its cached token's noted end. A killed working
 * peer's entry stays live until then and no statement marks that moment: the caller asks again at
 * it (block-naming.ts), not at its next block, a minute later. A live peer beats before it (idle,
 * once per lease length): the ask finds it live again, and its turns kept.
 */
export async function pacedRowsBlocked(
  db: Kysely<Database>,
  block: { code: string; message: string },
  workerId: string,
  limit = WAITING_ROWS_PER_MARK,
): Promise<{ everyone: boolean; named: number; endsInMs?: number }> {
  const { rows } = await writingStorable(db, (fit) =>
    sql<{ everyone: boolean; named: number; ends_in_ms: number | null }>`
    with able as materialized (
      -- Able until the earlier of its liveness's end and its cached token's (none while not refused).
      select least(${liveRegistryEntryEnd('w')},
                   case when w.credential_refused_code is not null then w.credential_serves_until end) as ends_at
        from mailer.workers w
       where w.id <> ${workerId} and ${entryCanSend('w')} and ${liveRegistryEntry('w')}
    ), everyone as materialized (
      select not exists (select from able) as refused,
             mailer.ms_until((select max(ends_at) from able)) as ends_in_ms
    ), picked as (
      select o.id from mailer.email_outbox o
       where (select refused from everyone)
         and o.status = 'pending' and o.send_at > now()
         and o.send_at <= (select max(m.next_at) from mailer.mailbox_pacing m)
         and o.last_error_code = ${PACED_CODE}
       order by o.send_at, o.id
       limit ${limit}
         for update of o skip locked
    ), named as (
      update mailer.email_outbox o
         set last_error_code = ${block.code}, last_error = ${fit(block.message)}, send_at = now()
       where o.id in (select id from picked) and o.status = 'pending'
      returning 1
    ), given_up as (
      delete from mailer.mailbox_pacing where mailbox like 'queue %' and (select refused from everyone)
    )
    select (select refused from everyone) as everyone, (select count(*) from named)::int as named,
           (select ends_in_ms from everyone)::float8 as ends_in_ms`.execute(db),
  )
  const endsInMs = rows[0]?.ends_in_ms
  return {
    everyone: rows[0]?.everyone ?? false,
    named: rows[0]?.named ?? 0,
    ...(endsInMs != null && { endsInMs: Math.max(0, Number(endsInMs)) }),
  }
}
