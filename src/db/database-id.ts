// This database's own id (mailer.database_identity, 0048): what its Graph messages carry so that no other database's are taken for them.
import type { Queryable } from './queryable.ts'

/**
 * The random uuid migrate made for this database (sql/0048), lower case. Two databases never share
 * it unless one was cloned from the other (README: the clone is given its own). Reads the table's
 * one row; none (deleted by hand) is an error, never a made-up id.
 */
export async function readDatabaseId(q: Queryable): Promise<string> {
  const r = await q.query<{ id: string }>('select id::text as id from mailer.database_identity')
  const id = r.rows[0]?.id
  if (!id) {
    throw new Error(
      'mailer.database_identity has no row: give it one (insert into mailer.database_identity default values)',
    )
  }
  return id
}

/**
 * readDatabaseId once: its answer is kept for the process's life (the id changes only by hand, and
 * a process started before is stopped for it: README). A read that failed (the database away) is
 * tried again by the next call, and calls meanwhile wait for the one read under way.
 */
export function databaseIdOnce(q: Queryable): () => Promise<string> {
  let read: Promise<string> | null = null
  return () => {
    read ??= readDatabaseId(q).catch((e: unknown) => {
      read = null
      throw e
    })
    return read
  }
}
