// A worker's registry entry that can send: no credential refusal noted, or a cached token still serving its sends (sql/0202).
import { sql } from 'kysely'

/**
 * An SQL condition on mailer.workers as `alias` (SQL the caller writes, never a value): its worker
 * can send now, as far as its credential goes. A refusal met by the refresh ahead of a token's end
 * (the usual first sign of an expired secret) is noted at once (sql/0198), yet the worker sends
 * until that token's noted use passes, read in database time (no note is needed then). An entry
 * of a release before 0202 notes no use: refused, it reads as unable to send; one before 0198
 * notes no refusal: it reads as able.
 */
export function entryCanSend(alias: string) {
  const w = sql.raw(alias)
  return sql`(${w}.credential_refused_code is null or ${w}.credential_serves_until > now())`
}
