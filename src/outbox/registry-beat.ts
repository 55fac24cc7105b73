// The worker registry's beat: the upsert of this worker's entry (its lease key, settings, credential refusal, newest send), run inside a statement the worker runs anyway.
import { sql } from 'kysely'
import type { WorkerIdentity } from './worker-identity.ts'

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
