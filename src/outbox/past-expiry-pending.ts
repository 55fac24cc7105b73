// What the count of pending rows past their expiresAt holds (stats.ts pastExpiryPending), in the one wording its metric, /v1/stats and status give.

/**
 * The count's definition, after `rows` (how they are named: "Pending rows", "2 pending row(s)"),
 * naming where its reader finds the age of the oldest due pending row (`oldestDue`), which the rows
 * waiting for a lookup are not in. With lookups on, a row with no interrupted send is swept as with
 * them off (expiry-sweep.ts): "besides those" covers both settings, not lookups off alone. Lookups
 * on is named by its setting: the count is read by api machines and status, which know no worker's.
 */
export const pastExpiryPendingMeaning = (rows: string, oldestDue: string): string =>
  `${rows} past their expiresAt (none is sent past it): with GRAPH_MAILBOX_LOOKUP=true, rows whose interrupted send waits to be looked up (not due meanwhile, so not in ${oldestDue}), for up to the lookup grace plus an hour past their expiresAt, then failed expired; besides those, rows no worker has failed yet (each worker's reclaim fails them within LEASE_SECONDS)`
