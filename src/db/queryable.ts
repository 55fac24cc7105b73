// Queryable: what can run one statement (a pool, a client, or the statement route), as the statements of every layer take it.
import type pg from 'pg'

/** What can run one statement: a pool, a client, or the route. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>
}
