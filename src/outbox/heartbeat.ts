// Heartbeat statements: keep live leases and this worker's registry entry fresh, past rows another transaction holds.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

export interface WorkerIdentity {
  id: string
  host: string
  pid: number
  version: string
  /** The lease key its claimed rows name it by in this database, once registered (lease-key.ts). */
  readonly leaseKey?: string | null
  /**
   * GRAPH_REQUEST_TIMEOUT_SECONDS its sends run under, noted in its registry entry (sql/0070) for a
   * lookup of its interrupted sends (lookup-grace.ts); null or absent without one.
   */
  readonly requestTimeoutSeconds?: number | null
  /**
   * Its MAIL_FROM's pause key, noted in its registry entry (sql/0079): a probe owed for a mailbox no
   * live entry notes is cleared (stale-probes.ts). '' for none; null or absent is read as an older
   * binary's entry (its mailbox unknown: every owed probe kept while it beats).
   */
  readonly probeMailbox?: string | null
  /**
   * Its LEASE_SECONDS, noted in its registry entry (sql/0084): idle, it beats once per lease length,
   * so another worker judges it live by that (stale-probes.ts); null or absent: an older binary's.
   */
  readonly leaseSeconds?: number | null
  /**
   * While the provider refuses its credential for good (Graph: Entra's code, never its text): the
   * code and how long the refusal has stood, noted in its registry entry at each beat and as it
   * changes (sql/0198, credential-refusal-note.ts); and how long its cached token still serves
   * sends (a refusal met by the refresh ahead of the token's end), noted with it (sql/0202): 0 or
   * absent, none serves. Null or absent: not refused (an older binary notes nothing).
   */
  readonly credentialRefusal?: { code: string; forMs: number; servesForMs?: number } | null
  /**
   * Its newest recorded send not yet noted in its registry entry (sql/0201, last-send.ts): noted
   * at the next beat as now() less `agoMs`; null or absent: none to note (an older binary notes none).
   */
  readonly unnotedSend?: { atMs: number; agoMs: number } | null
}

/** A code as the registry keeps it: Entra's and ours are short words; anything else is named by none of its text. */
function storedRefusalCode(code: string): string {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(code) ? code : 'refused'
}

/**
 * What the worker's entry notes of its credential now (sql/0198): the code as kept (null: not
 * refused) and since when, in database time: now() less how long the process has seen the refusal
 * stand (no machine clock trusted). A refusal standing keeps the since its entry noted first.
 * `servesUntil` (sql/0202): while refused, now() plus how long the cached token still serves
 * sends; null when none serves (make_interval of a null is null), or with no refusal.
 */
export function credentialRefusalColumns(worker: WorkerIdentity) {
  const refusal = worker.credentialRefusal ?? null
  const code = refusal ? storedRefusalCode(refusal.code) : null
  const forSeconds = refusal ? refusal.forMs / 1000 : null
  const servesMs = refusal?.servesForMs ?? 0
  const servesSeconds = servesMs > 0 ? servesMs / 1000 : null
  return {
    code,
    since: sql`now() - make_interval(secs => ${forSeconds}::float8)`,
    servesUntil: sql`now() + make_interval(secs => ${servesSeconds}::float8)`,
  }
}

/**
 * The identity as a beat built now writes it: its getters (the lease key, the credential's
 * refusal) read once. A beat built from it and sent later (the pool holding it) writes what it
 * was built with, whatever changed meanwhile: the caller hands it, once the beat has committed, to
 * what compares it with the state then (credential-refusal-note.ts, beatCommitted).
 */
export function beatNow(worker: WorkerIdentity): WorkerIdentity {
  return { ...worker }
}

/**
 * The worker registry's upsert, as CTEs (`beat_keyed`, `beat`) of a statement the worker runs
 * anyway (heartbeat, reclaim): the registry never costs a statement of its own. An entry lost while
 * its worker lives (purged as silent for a day, a failover to a replica its registration had not
 * reached) is written again with the worker's lease key, unless another entry holds it
 * (workers_lease_key_idx): then keyless, as another worker drew the key its claimed rows still
 * name. ON CONFLICT DO NOTHING with no target takes a key another transaction writes at the same
 * instant as held, where a key checked free and then inserted failed the whole statement
 * (unique violation). An existing entry's key is never written here (only registerLeaseKey does).
 */
export function registryBeat(worker: WorkerIdentity) {
  const key = worker.leaseKey ?? null
  const timeout = worker.requestTimeoutSeconds ?? null
  const mailbox = worker.probeMailbox ?? null
  const lease = worker.leaseSeconds ?? null
  const { code: refusedCode, since, servesUntil } = credentialRefusalColumns(worker)
  // Null with none to note: greatest() below keeps the entry's.
  const agoSeconds = worker.unnotedSend ? worker.unnotedSend.agoMs / 1000 : null
  const sentAt = sql`now() - make_interval(secs => ${agoSeconds}::float8)`
  // The entry written by a statement begun after this one (its last_heartbeat_at later than this
  // now(): a note of a refusal changed meanwhile, credential-refusal-note.ts) keeps what that one
  // wrote: this beat read the refusal before it, and waited (a lock, the pool) past its commit.
  const newer = sql`mailer.workers.last_heartbeat_at > now()`
  return sql`beat_keyed as (
               insert into mailer.workers (id, host, pid, version, lease_key, request_timeout_seconds, probe_mailbox,
                                           lease_seconds, credential_refused_code, credential_refused_since,
                                           credential_serves_until, last_sent_at)
               values (${worker.id}, ${worker.host}, ${worker.pid}, ${worker.version}, ${key}, ${timeout}::int,
                       ${mailbox}::text, ${lease}::int, ${refusedCode}::text, ${since}, ${servesUntil}, ${sentAt})
               on conflict do nothing
               returning lease_key
             ),
             beat as (
               insert into mailer.workers (id, host, pid, version, request_timeout_seconds, probe_mailbox, lease_seconds,
                                           credential_refused_code, credential_refused_since, credential_serves_until,
                                           last_sent_at)
               select ${worker.id}::text, ${worker.host}::text, ${worker.pid}::int, ${worker.version}::text, ${timeout}::int,
                      ${mailbox}::text, ${lease}::int, ${refusedCode}::text, ${since}, ${servesUntil}, ${sentAt}
                where not exists (select from beat_keyed)
               -- A refusal standing keeps the since its first beat noted; a token clears both.
               on conflict (id) do update
                 set last_heartbeat_at = greatest(mailer.workers.last_heartbeat_at, now()),
                     credential_refused_code = case when ${newer} then mailer.workers.credential_refused_code
                       else excluded.credential_refused_code end,
                     credential_refused_since = case when ${newer} then mailer.workers.credential_refused_since
                       when excluded.credential_refused_code is not null
                       then coalesce(mailer.workers.credential_refused_since, excluded.credential_refused_since) end,
                     credential_serves_until = case when ${newer} then mailer.workers.credential_serves_until
                       else excluded.credential_serves_until end,
                     -- A send is a fact: never moved back, whichever beat came first (greatest skips a null).
                     last_sent_at = greatest(mailer.workers.last_sent_at, excluded.last_sent_at)
               returning lease_key
             )`
}

/** What a beat met: the key it was sent with, and the key the worker's entry holds after it. */
export interface BeatResult {
  sent: string | null
  entry: string | null
}

/** The entry's key after the beat, one row, read from registryBeat's CTEs in the same statement. */
export const beatEntryKey = sql<{
  lease_key: string | null
}>`select lease_key from beat_keyed union all select lease_key from beat`

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
