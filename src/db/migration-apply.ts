// A migration applied: in a transaction or statement by statement, run again after a deadlock or a lock wait given up, within the run's tries.
import type pg from 'pg'
import { AppError, describeError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { describeHolder, readLockHolders } from './lock-holders.ts'
import { runsOutsideTransaction, statementsOf } from './migration-plan.ts'
import { recordMigration } from './migration-record.ts'
import type { Migration } from './migrations.ts'
import { DEADLOCK_SQLSTATE, LOCK_NOT_AVAILABLE_SQLSTATE } from './sqlstate.ts'

/**
 * How many times a migration is run when Postgres aborts its transaction to break a deadlock
 * (40P01): a running worker's transaction (an older release's, during a rolling deploy) that locks
 * the same tables in the other order, the outbox then the pacing row as against 0075's index on
 * mailbox_pacing then its triggers on the outbox. The rollback undid the whole migration, and the
 * worker's transaction goes on once it did, so running it again is safe and meets no cycle then.
 */
const DEADLOCK_TRIES = 5

/**
 * How many waits for a table lock past lock_timeout (55P03: a long transaction, a report or a hand
 * session, holds the table) one run gives up before it fails: with the default 60 s, three waits
 * end within Fly's 5-minute release window for one database (the deploy guide gives the whole
 * bound). Counted for the run, not each migration: a release of
 * two migrations that each waited three times ran six minutes. Each wait given up lets the
 * statements queued behind it (the workers') run meanwhile.
 */
const LOCK_TIMEOUT_TRIES = 3

/**
 * A migration run, and run again from its start when a deadlock or a lock timeout ended it: in a
 * transaction the rollback undid it; outside one (`--! no-transaction`) each file is written so
 * that running it again from its start completes it (migration-plan.ts).
 */
export async function applyWithRetries(
  client: pg.Client,
  m: Migration,
  log: Logger,
  lockTimeoutMs: number,
  /** The run's waits past lock_timeout so far, shared by its migrations. */
  waits: { givenUp: number },
  /** The run's deadline came: nothing is tried again, and the error goes up as it is. */
  stopped: () => boolean,
) {
  const outside = runsOutsideTransaction(m)
  for (let attempt = 1; ; attempt++) {
    try {
      if (outside) await applyOutsideTransaction(client, m, stopped)
      else await applyInTransaction(client, m)
      return
    } catch (e) {
      if (stopped()) throw e
      const code = (e as { code?: unknown }).code
      const fields = { version: m.version, name: m.name, attempt }
      if (code === DEADLOCK_SQLSTATE && attempt < DEADLOCK_TRIES) {
        log.warn(
          'a migration was aborted to break a deadlock with another session; running it again',
          fields,
        )
        continue
      }
      // The sessions in the way, named (a failed read of them names none: the wait's error stands).
      const holders =
        code === LOCK_NOT_AVAILABLE_SQLSTATE
          ? await readLockHolders(client, lockTimeoutMs).catch(() => [])
          : []
      if (code === LOCK_NOT_AVAILABLE_SQLSTATE) waits.givenUp += 1
      if (code === LOCK_NOT_AVAILABLE_SQLSTATE && waits.givenUp < LOCK_TIMEOUT_TRIES) {
        log.warn('a migration waited past lock_timeout; running it again', {
          ...fields,
          lockTimeoutMs,
          holders,
        })
        continue
      }
      const named = holders.length
        ? `; after ${waits.givenUp} waits of ${lockTimeoutMs / 1000} s, the lock was held by ${holders.map(describeHolder).join('; ')} (end it, or pg_terminate_backend(pid), then run migrate again)`
        : ''
      throw new AppError(
        'internal',
        `migration ${m.name} failed: ${describeError(e)}${named}${outside ? ' (it runs outside a transaction and is not recorded as applied: run migrate again to complete it)' : ''}`,
        {},
        { cause: e },
      )
    }
  }
}

async function applyInTransaction(client: pg.Client, m: Migration) {
  await client.query('begin')
  try {
    await client.query(m.sql)
    await recordMigration(client, m)
    await client.query('commit')
  } catch (e) {
    await client.query('rollback')
    throw e
  }
}

// Each statement commits on its own, so a failure leaves the earlier ones applied: such a file is
// written so that running it again from the start completes it (drop … if exists, then create).
async function applyOutsideTransaction(client: pg.Client, m: Migration, stopped: () => boolean) {
  for (const statement of statementsOf(m)) {
    if (stopped()) throw new Error('the deadline passed')
    await client.query(statement)
  }
  await recordMigration(client, m)
}
