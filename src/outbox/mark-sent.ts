// markSent: records a batch of successful sends and their attempt history in one lean statement.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import type { SettleItem } from './settle-item.ts'
import { type Fit, writingStorable } from './storable-in-encoding.ts'

/** What a markSent statement did with its batch. */
export interface SentMarks {
  /** Recorded as sent. */
  sent: Set<string>
  /**
   * Still this worker's lease, but locked by another transaction (an application's open UPDATE of
   * the row, an API action, a heartbeat): not recorded, to be asked again. Rows in neither set were
   * lost.
   */
  busy: Set<string>
}

/**
 * The common case on its own: sends that succeeded. Same fence and history as settleLeases, without
 * a verdict to evaluate: mailer.mark_sent_unlocked (sql/0036; mailer.mark_sent of sql/0004_hot_path.sql,
 * sql/0021, but waiting at most 50 ms for a lock), its generic plan cached per connection. Its rows
 * are updated in id order (a merge join of their probes with the sorted input) by mark_sent's one
 * UPDATE, no lock record per row; only when a row's lock outlasts the 50 ms does it lock the rows
 * it can at once (SKIP LOCKED), record those and name the others `busy`: one row another
 * transaction held kept the whole batch waiting, past statement_timeout, and its rows, sent, were
 * reclaimed and sent again.
 *
 * Its parameters are kept small, as this runs once per few hundred sends: ids and send times as
 * comma-separated integers (neither can contain a comma), the lease tokens as the batch's few
 * distinct tokens plus a number per row (a claim's token recurs in each of its rows), and a column
 * that is null in every row as one null. Request ids, free text from the provider, stay a text[].
 * The call is prepared per connection (its plan reads no table, so it cannot go stale): unnamed,
 * each call was parsed, analysed and planned again, its arrays folded at plan time: about 1.4 µs
 * of backend CPU per row of a 500-row settlement, 0.3 ms per one-row one (BENCHMARKS.md, round 26).
 */
export async function markSent(
  db: Kysely<Database>,
  items: readonly SettleItem[],
  workerId: string,
): Promise<SentMarks> {
  if (items.length === 0) return { sent: new Set(), busy: new Set() }
  const tokens: string[] = []
  const tokenNumbers = new Map<string, number>()
  const tokenOfRow = items.map((i) => {
    let n = tokenNumbers.get(i.token)
    if (n === undefined) {
      n = tokens.push(i.token)
      tokenNumbers.set(i.token, n)
    }
    return n
  })
  const statuses = items.some((i) => i.httpStatus != null)
    ? items.map((i) => i.httpStatus ?? null)
    : null
  // Request ids as the database's encoding can hold them (storable-in-encoding.ts).
  const requestIds = (storable: Fit) =>
    items.some((i) => i.requestId != null)
      ? items.map((i) => (i.requestId == null ? null : storable(i.requestId)))
      : null
  // An empty element of the send times is a null (a send found in the mailbox has no start time).
  const { rows } = await writingStorable(db, (storable) =>
    sql<{ sent: string | null; busy: string | null }>`
    /* prepared outbox_mark_sent */
    select sent, busy from mailer.mark_sent_unlocked(
             string_to_array(${items.map((i) => i.id).join(',')}::text, ',')::bigint[],
             (select array_agg(t.list[r.n::int] order by r.ord)
                from (select ${tokens}::uuid[] as list) t,
                     unnest(string_to_array(${tokenOfRow.join(',')}::text, ',')) with ordinality as r(n, ord)),
             string_to_array(${items.map((i) => i.startedAt?.getTime() ?? '').join(',')}::text, ',', '')::float8[],
             ${statuses}::int[], ${requestIds(storable)}::text[], ${workerId}::text)`.execute(db),
  )
  const ids = (list: string | null | undefined) => new Set(list ? list.split(',') : [])
  return { sent: ids(rows[0]?.sent), busy: ids(rows[0]?.busy) }
}
