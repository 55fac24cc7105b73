// Heartbeat statements: keep live leases and this worker's registry entry fresh, past rows another transaction holds.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { type BeatResult, beatEntryKey, registryBeat } from './registry-beat.ts'
import type { WorkerIdentity } from './worker-identity.ts'

interface ReachedLeases {
  /** Extended: still held. */
  extended: Set<string>
  /**
   * Held when the statement began, but locked by another transaction (an application's open UPDATE
   * of the row, an API action, this worker's own settlement): neither extended nor known lost.
   */
  busy: Set<string>
  beat: BeatResult
}

/**
 * A heartbeat tick's statement: extends every given lease whose row it can lock at once and upserts
 * the worker's heartbeat. It waits for no lock: waiting in id order for one row that another
 * transaction held (an application keeping its UPDATE of that row open), it extended none of the
 * rows after it until that transaction ended or the statement timed out, and their leases ran out
 * and were reclaimed mid-send: sent twice (test/integration/heartbeat-locked-row.test.ts). A row
 * skipped so is `busy`, for extendLeases (which waits) to take on its own.
 * Fenced by (id, lease_token, status = 'sending'), judged on the latest row version; touches only
 * lease_expires_at (HOT). SKIP LOCKED never waits, so lock order cannot deadlock it.
 */
export async function extendReachableLeases(
  db: Kysely<Database>,
  worker: WorkerIdentity,
  leases: readonly { id: string; token: string }[],
  leaseSeconds: number,
): Promise<ReachedLeases> {
  const sent = worker.leaseKey ?? null
  const ids = leases.map((l) => l.id)
  const { rows } = await sql<{ id: string | null; extended: boolean; entry_key: string | null }>`
    with ${registryBeat(worker)},
    input as (
      select * from unnest(${ids}::bigint[], ${leases.map((l) => l.token)}::uuid[]) as t(id, token)
    ),
    -- The ids again as = any: the planner estimates their rows from it and looks them up by the
    -- primary key; from the join alone, with the table mostly sending, it hashed every sending row.
    ours as materialized (
      select o.id from mailer.email_outbox o join input t on o.id = t.id and o.lease_token = t.token
       where o.status = 'sending' and o.id = any(${ids}::bigint[])
    ),
    locked as materialized (
      select o.id from mailer.email_outbox o join input t on o.id = t.id and o.lease_token = t.token
       where o.status = 'sending' and o.id = any(${ids}::bigint[])
       order by o.id
         for no key update of o skip locked
    ),
    extended as (
      update mailer.email_outbox o
         set lease_expires_at = now() + make_interval(secs => ${leaseSeconds})
       where o.id in (select id from locked) and o.status = 'sending'
      returning o.id
    )
    select id, true as extended, null::text as entry_key from extended
    union all
    select id, false, null from ours where id not in (select id from locked)
    union all
    select null, null, lease_key from (${beatEntryKey}) b`.execute(db)
  const r: ReachedLeases = { extended: new Set(), busy: new Set(), beat: { sent, entry: null } }
  for (const row of rows) {
    if (row.id === null) r.beat.entry = row.entry_key
    else (row.extended ? r.extended : r.busy).add(String(row.id))
  }
  return r
}

/**
 * Extends the given leases and upserts the worker's heartbeat; returns the ids still held. Waits
 * for rows another transaction holds: the heartbeat runs it for those extendReachableLeases found
 * busy, apart from its ticks, so such a row's lease is extended the moment that transaction ends,
 * ahead of any reclaim (which skips locked rows).
 * Fenced by (id, lease_token, status = 'sending'); touches only lease_expires_at, which no index
 * covers, so the update stays HOT. Locks its rows first, in id order (`locked`), as every other
 * statement over several claimed rows does (the API's bulk cancel, start_sends, the settlements):
 * joined to the leases in the order they were claimed, it deadlocked with them. The lock is the
 * one the update takes anyway (no key update), found through email_outbox_sending_idx.
 */
export async function extendLeases(
  db: Kysely<Database>,
  worker: WorkerIdentity,
  leases: readonly { id: string; token: string }[],
  leaseSeconds: number,
): Promise<Set<string>> {
  const { rows } = await sql<{ id: string }>`
    with ${registryBeat(worker)},
    locked as materialized (
      select o.id from mailer.email_outbox o
        join unnest(${leases.map((l) => l.id)}::bigint[], ${leases.map((l) => l.token)}::uuid[]) as t(id, token)
          on o.id = t.id and o.lease_token = t.token
       where o.status = 'sending'
       order by o.id
         for no key update of o
    )
    update mailer.email_outbox o
       set lease_expires_at = now() + make_interval(secs => ${leaseSeconds})
     where o.id in (select id from locked) and o.status = 'sending'
    returning o.id`.execute(db)
  return new Set(rows.map((r) => r.id))
}
