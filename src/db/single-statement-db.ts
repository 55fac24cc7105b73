// Kysely for statements that run on their own (autocommit): beginning a transaction throws, naming where one runs.
import { Kysely, PostgresDialect, type PostgresDialectConfig, PostgresDriver } from 'kysely'
import type { Database } from './schema.ts'

/** `pool` hands out a connection per statement and takes it back after (the statement route's turn). */
export function singleStatementDb(pool: PostgresDialectConfig['pool']): Kysely<Database> {
  return new Kysely<Database>({ dialect: new SingleStatementDialect({ pool }) })
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
