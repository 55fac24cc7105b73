// Kysely for statements that run on their own (autocommit): a transaction throws, naming where one runs; statementText skips Kysely.
import {
  CompiledQuery,
  Kysely,
  PostgresDialect,
  type PostgresDialectConfig,
  PostgresDriver,
} from 'kysely'
import type pg from 'pg'
import type { Database } from './schema.ts'

/** Runs one statement in a turn of its own, as the db's statements run (the statement route's query). */
type RunStatement = (text: string, values: unknown[]) => Promise<pg.QueryResult>

/**
 * `pool` hands out a connection per statement and takes it back after (the statement route's
 * turn); `run` takes the same turn for statementText.
 */
export function singleStatementDb(
  pool: PostgresDialectConfig['pool'],
  run: RunStatement,
): Kysely<Database> {
  const db = new Kysely<Database>({ dialect: new SingleStatementDialect({ pool }) })
  runners.set(db, run)
  return db
}

const runners = new WeakMap<Kysely<Database>, RunStatement>()

/**
 * Sends a statement written out with its $n placeholders: on a single-statement db straight to its
 * runner, on any other (a pool's, a transaction) as a compiled query. For what a pickup waits for
 * (the claim, a Graph send's last check): run cold between rows, an `sql` tag's nodes (built and
 * frozen per call), their compilation and Kysely's executor cost each such statement 0.06-0.09 ms
 * of client time (round 28, BENCHMARKS.md). The runner's promise itself is returned, not awaited in
 * an async function of its own: that was one more turn between the answer and its caller.
 */
export function statementText<R>(
  db: Kysely<Database>,
  text: string,
  values: unknown[],
): Promise<{ rows: R[] }> {
  const run = runners.get(db)
  if (run) return run(text, values) as unknown as Promise<{ rows: R[] }>
  return db.executeQuery<R>(CompiledQuery.raw(text, values))
}

class SingleStatementDriver extends PostgresDriver {
  override async beginTransaction(): Promise<void> {
    throw new Error(
      'the statement route runs statements on their own; run a transaction on the pool (DbHandle.db)',
    )
  }
}

class SingleStatementDialect extends PostgresDialect {
  readonly #config: PostgresDialectConfig
  constructor(config: PostgresDialectConfig) {
    super(config)
    this.#config = config
  }
  override createDriver() {
    return new SingleStatementDriver(this.#config)
  }
}
