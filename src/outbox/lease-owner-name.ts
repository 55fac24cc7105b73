// The holder a row read names: lease_owner's lease key as the worker id the registry holds for it, else lease_owner as written.
import { type RawBuilder, sql } from 'kysely'
import { SUMMARY_COLUMNS } from './outbox-view.ts'

/**
 * The worker id registered under the lease key in `column` (workers_lease_key_idx, unique, sql/0055),
 * else the column as written: an older binary's full id, or a key whose entry is gone (its worker
 * stopped with no row left in flight, or was silent for a day).
 */
export function leaseOwnerName(column: string): RawBuilder<string | null> {
  const owner = sql.ref(column)
  return sql<
    string | null
  >`coalesce((select w.id from mailer.workers w where w.lease_key = ${owner}), ${owner})`
}

/** SUMMARY_COLUMNS of `table` with lease_owner named as leaseOwnerName names it. */
export function summarySelection(table: string) {
  return [
    ...SUMMARY_COLUMNS.filter((c): c is Exclude<typeof c, 'lease_owner'> => c !== 'lease_owner'),
    leaseOwnerName(`${table}.lease_owner`).as('lease_owner'),
  ]
}
