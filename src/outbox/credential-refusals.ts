// The live workers whose registry entry notes that the provider refuses their credential (sql/0198): how many, which codes, since when, and which still send on a cached token (0202).
import { sql } from 'kysely'
import { timestampText } from '../db/timestamp-reading.ts'
import { liveRegistryEntry } from './live-registry-entry.ts'

/** As /v1/stats and status --json show it; `since` ISO 8601 (the earliest), null with none. */
export interface CredentialRefused {
  /** Live workers whose last token request the provider refused for good (Entra's AADSTS code). */
  workers: number
  /** Their codes, sorted; never the provider's text. */
  codes: string[]
  since: string | null
  /**
   * Of `workers`, those whose cached token still serves sends (sql/0202: a refusal met by a refresh
   * ahead of the token's end): they send until it ends. 0 with none, or with only older binaries'.
   */
  cachedTokenWorkers: number
  /**
   * When the first of those cached tokens stops serving (ISO 8601, the database's time as the entry
   * noted it); null when none serves.
   */
  cachedTokenServesUntil: string | null
}

/**
 * A subquery for a FROM list as `alias` with columns `workers`, `codes`, `since`, `serving` and
 * `serves_until` (a noted end already past reads as none, as entry-can-send.ts reads it): the
 * registry is a handful of rows (one per running worker), read whole. An entry of an older binary
 * notes no code (NULL): never counted. Live by each entry's own lease length
 * (live-registry-entry.ts): a worker gone keeps its entry for a day, and its refusal is no one's now.
 */
export function credentialRefusedNow(alias: string) {
  return sql`(select count(*) as workers,
                     coalesce(array_agg(distinct w.credential_refused_code), '{}') as codes,
                     min(w.credential_refused_since) as since,
                     count(*) filter (where w.credential_serves_until > now()) as serving,
                     min(w.credential_serves_until) filter (where w.credential_serves_until > now()) as serves_until
                from mailer.workers w
               where w.credential_refused_code is not null and ${liveRegistryEntry('w')}) ${sql.raw(alias)}`
}

/** The subquery's row as it is shown. */
export function credentialRefusedOf(row: {
  workers: string | number
  codes: string[]
  since: Date | null
  serving: string | number
  servesUntil: Date | null
}): CredentialRefused {
  return {
    workers: Number(row.workers),
    codes: [...row.codes].sort(),
    since: row.since === null ? null : timestampText(row.since),
    cachedTokenWorkers: Number(row.serving),
    cachedTokenServesUntil: row.servesUntil === null ? null : timestampText(row.servesUntil),
  }
}
