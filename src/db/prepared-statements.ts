// Prepared statements: a query whose text opens with `/* prepared <name> */` is parsed once per connection.
// What pg@9 may change under it (checked against pg 8.23.1): it overrides the public, promise-
// returning Client.prototype.query on a subclass and calls the base one with (text, values) or a
// { name, text, values } config, so a rename or a new argument form of query() breaks it; and it
// relies on pg keeping a named statement per connection (connection.parsedStatements, and
// submittedNamedStatements, which the opt-in pipelining of 8.23 added to share one in-flight
// Parse, https://github.com/brianc/node-postgres/pull/3652). pg@9 drops the client's query queue,
// a query sent while one is unanswered (https://github.com/brianc/node-postgres/pull/3603; to be
// replaced by pipelining, per that thread): the unnamed retry below is sent from the named
// attempt's rejection, once that has answered, never beside it. Both paths are run by
// test/integration/prepared-statements.test.ts, under the suite's query-overlap guard.
import pg from 'pg'
import { STATEMENT_NAME } from '../database-error-names.ts'

// The marker names the statement; one name per call site, so one text per name on a connection.
const MARKER = /^\s*\/\* prepared ([a-z][a-z0-9_]*) \*\//

// How a transaction pooler that does not keep prepared statements answers a named one: the
// statement is missing on the server connection the Bind was routed to (26000), or another
// client's statement of that name is there (42P05). Both fail at Parse or Bind, before anything
// ran, so the same query can be sent again unnamed.
const NOT_KEPT = new Set(['26000', '42P05'])

type Query = (this: pg.Client, ...args: unknown[]) => unknown

/**
 * A pg Client class for one pool: marked queries go out as named statements, so the server skips
 * parsing and planning them after the first time on each connection (0.06-0.18 ms of a claim's
 * round trip on the benchmark's VM). Mark only statements whose plan cannot go stale (a call of a
 * function that pins its own plans): a cached generic plan outlives the statistics it was made with. The first sign that the connection does not keep them (a
 * transaction pooler) switches the whole pool to unnamed statements for good and calls `onNotKept`.
 * Unmarked queries, and queries with a callback, are passed through untouched.
 * Mark only statements that run on their own (autocommit): inside a transaction the refused attempt
 * would abort it, and the statement sent again would fail with it.
 */
/** A marked query's error names its statement, for a log line (database-error-names.ts). */
const naming = (statement: string) => (err: unknown) => {
  if (err !== null && typeof err === 'object' && !(STATEMENT_NAME in err))
    Object.assign(err, { [STATEMENT_NAME]: statement })
  throw err
}

export function preparingClient(onNotKept: (err: unknown) => void): typeof pg.Client {
  let named = true
  const plain = pg.Client.prototype.query as unknown as Query
  class PreparingClient extends pg.Client {}
  const query: Query = function (this: pg.Client, ...args: unknown[]) {
    const [text, values] = args
    const marked = args.length <= 2 && typeof text === 'string' ? MARKER.exec(text)?.[1] : undefined
    if (!marked) return plain.apply(this, args)
    if (!named) return (plain.call(this, text, values) as Promise<unknown>).catch(naming(marked))
    return (plain.call(this, { name: marked, text, values }) as Promise<unknown>).catch(
      (err: unknown) => {
        const code = (err as { code?: unknown } | null)?.code
        if (typeof code !== 'string' || !NOT_KEPT.has(code)) return naming(marked)(err)
        if (named) {
          named = false
          onNotKept(err)
        }
        return (plain.call(this, text, values) as Promise<unknown>).catch(naming(marked))
      },
    )
  }
  PreparingClient.prototype.query = query as unknown as pg.Client['query']
  return PreparingClient
}
