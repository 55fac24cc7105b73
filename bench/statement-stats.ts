// What pg_stat_statements counted for the statements of one database whose text matches, summed: a benchmark's before/after reads.
import type pg from 'pg'

export interface StatementStats {
  calls: number
  /** Total execution time, ms. */
  ms: number
  /** Shared buffers hit + read. */
  buffers: number
}

/**
 * Sums calls, execution time and shared buffers over the top-level statements of `database` whose
 * text is like `textLike` and, with `split`, whose text is like `split.like` or not as
 * `split.matches` says (two variants of one statement told apart by a piece of their text).
 * pg_stat_statements keeps a statement's text without its leading comment (a prepared name).
 */
export async function statementStats(
  admin: pg.Client,
  database: string,
  textLike: string,
  split?: { like: string; matches: boolean },
): Promise<StatementStats> {
  const { rows } = await admin.query<{ calls: string; ms: number; buffers: string }>(
    `select coalesce(sum(s.calls), 0) as calls, coalesce(sum(s.total_exec_time), 0) as ms,
            coalesce(sum(s.shared_blks_hit + s.shared_blks_read), 0) as buffers
       from pg_stat_statements s join pg_database d on d.oid = s.dbid
      where d.datname = $1 and s.toplevel and s.query like $2
        and ($3::text is null or (s.query like $3) = $4)`,
    [database, textLike, split?.like ?? null, split?.matches ?? true],
  )
  return { calls: Number(rows[0]!.calls), ms: rows[0]!.ms, buffers: Number(rows[0]!.buffers) }
}

/** Adds what was counted between `before` and `after` to `into`. */
export function addCounted(into: StatementStats, before: StatementStats, after: StatementStats) {
  into.calls += after.calls - before.calls
  into.ms += after.ms - before.ms
  into.buffers += after.buffers - before.buffers
}
