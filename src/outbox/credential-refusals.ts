// The live workers whose registry entry notes that the provider refuses their credential (sql/0198): how many, which codes, since when.
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
}

/**
 * A subquery for a FROM list as `alias` with columns `workers`, `codes`, `since`: the registry is
 * a handful of rows (one per running worker), read whole. An entry of an older binary notes no
 * code (NULL): never counted. Live by each entry's own lease length (live-registry-entry.ts): a
 * worker gone keeps its entry for a day, and its refusal is no one's now.
 */
export function credentialRefusedNow(alias: string) {
  return sql`(select count(*) as workers,
                     coalesce(array_agg(distinct w.credential_refused_code), '{}') as codes,
                     min(w.credential_refused_since) as since
                from mailer.workers w
               where w.credential_refused_code is not null and ${liveRegistryEntry('w')}) ${sql.raw(alias)}`
}

/** The subquery's row as it is shown. */
export function credentialRefusedOf(row: {
  workers: string | number
  codes: string[]
  since: Date | null
}): CredentialRefused {
  return {
    workers: Number(row.workers),
    codes: [...row.codes].sort(),
    since: row.since === null ? null : timestampText(row.since),
  }
}
