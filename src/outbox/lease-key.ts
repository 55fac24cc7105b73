// A worker's lease key in one database: the 3 characters its claimed rows name it by (lease_owner), drawn at registration, unique among the registry's entries.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { UNIQUE_VIOLATION_SQLSTATE } from '../db/sqlstate.ts'
import type { BeatResult } from './registry-beat.ts'
import type { WorkerIdentity } from './worker-identity.ts'

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz'
// 36^3 = 46,656 keys. Three characters, not the id's 27: the claimed row version carries the key,
// and 1 to 3 characters cost the benchmark's rows 717 B of WAL each, 4 to 8 cost 735, 27 cost 751
// (bench/page-room.ts, round 37).
const KEY_LENGTH = 3
// A draw meets a key already held with odds of (entries / 46,656): tries past a few mean something
// else is wrong, and the claim that asked fails and asks again later.
const DRAWS = 20

/** A key of KEY_LENGTH characters [0-9a-z]; `random` in [0, 1). */
export function drawLeaseKey(random: () => number = Math.random): string {
  let key = ''
  for (let i = 0; i < KEY_LENGTH; i++) key += ALPHABET[Math.floor(random() * ALPHABET.length)]
  return key
}

/**
 * Registers the worker under `key` with its request timeout (sql/0070), its MAIL_FROM's pause key
 * (sql/0079) and its lease length (sql/0084), or refreshes its entry (an
 * entry with a key keeps it); returns
 * the entry's key, or null when another entry holds `key` (workers_lease_key_idx, unique, sql/0055).
 */
export async function registerLeaseKey(
  db: Kysely<Database>,
  worker: WorkerIdentity,
  key: string,
): Promise<string | null> {
  try {
    const { rows } = await sql<{ lease_key: string }>`
      insert into mailer.workers (id, host, pid, version, lease_key, request_timeout_seconds, probe_mailbox,
                                  lease_seconds)
      values (${worker.id}, ${worker.host}, ${worker.pid}, ${worker.version}, ${key},
              ${worker.requestTimeoutSeconds ?? null}::int, ${worker.probeMailbox ?? null}::text,
              ${worker.leaseSeconds ?? null}::int)
      on conflict (id) do update
        set last_heartbeat_at = now(), lease_key = coalesce(mailer.workers.lease_key, excluded.lease_key),
            request_timeout_seconds = coalesce(mailer.workers.request_timeout_seconds,
                                               excluded.request_timeout_seconds),
            probe_mailbox = coalesce(mailer.workers.probe_mailbox, excluded.probe_mailbox),
            lease_seconds = coalesce(mailer.workers.lease_seconds, excluded.lease_seconds)
      returning lease_key`.execute(db)
    return rows[0]?.lease_key ?? null
  } catch (error) {
    if ((error as { code?: unknown }).code === UNIQUE_VIOLATION_SQLSTATE) return null
    throw error
  }
}

export interface LeaseKey {
  /** The key, registering first if not yet done (one statement per draw); rejects when that fails. */
  get(): Promise<string>
  /** The key once registered, else null. */
  current(): string | null
  /**
   * What a heartbeat's or reclaim's beat met. Sent with the key, it found the entry without it (or
   * with another): the entry was lost and another worker drew the key meanwhile, so the key is
   * dropped and a new one drawn at once, for the claims to come. Rows claimed under the old key
   * stay fenced by their lease tokens; they name the other worker until they settle.
   */
  beaten(beat: BeatResult): void
}

/** Registers once, at the first get() that succeeds; a failed one is tried again at the next get(). */
export function createLeaseKey(
  db: Kysely<Database>,
  worker: WorkerIdentity,
  o: {
    onRegistered?: (key: string) => void
    /** The key was found held by another entry (`beaten`): dropped, a new one being drawn. */
    onTaken?: (key: string) => void
    random?: () => number
  } = {},
): LeaseKey {
  let key: string | null = null
  let registering: Promise<string> | null = null
  async function register(): Promise<string> {
    for (let i = 0; i < DRAWS; i++) {
      const held = await registerLeaseKey(db, worker, drawLeaseKey(o.random))
      if (held !== null) return held
    }
    throw new Error(`no free lease key in ${DRAWS} draws`)
  }
  function get(): Promise<string> {
    if (key !== null) return Promise.resolve(key)
    registering ??= register().then(
      (k) => {
        key = k
        o.onRegistered?.(k)
        return k
      },
      (error) => {
        registering = null
        throw error
      },
    )
    return registering
  }
  return {
    get,
    current: () => key,
    beaten({ sent, entry }) {
      // A beat sent before the registration (sent null) or with a key since dropped says nothing.
      if (sent === null || sent !== key || entry === sent) return
      key = null
      registering = null
      o.onTaken?.(sent)
      // A failure here is tried again by the next claim's get().
      get().catch(() => {})
    },
  }
}
