// How a migrate run given a deadline ended, within a bound: the deadline tests' common measure.
import { systemClock, waitAtMost } from '../../src/clock.ts'
import { migrate } from '../../src/db/migrate.ts'
import type { MigrateDeadline } from '../../src/db/migrate-deadline.ts'
import { type Migration, migrations } from '../../src/db/migrations.ts'
import { silentLogger } from '../../src/log.ts'

/** A deadline `seconds` from now, as migrate-every.ts makes one for the whole run. */
export const deadlineIn = (seconds: number): MigrateDeadline => ({
  seconds,
  at: performance.now() + seconds * 1000,
})

/**
 * How long a test waits for migrate to end: far past a deadline of 3 or 5 s and a cancel's 5 s of
 * grace on a loaded machine, far short of what it waits without one (a table lock 3 x 60 s, another
 * migrator's 60 s, pg_sleep 600 s, a loop that ignores a cancel for ever).
 */
export const ENDED_WITHIN_MS = 25_000

/** How migrate ended: its error's code and message, `migrated`, or `still running` past the bound. */
export async function outcome(run: Promise<unknown>): Promise<{ code: string; message: string }> {
  const ended = run.then(
    () => ({ code: 'migrated', message: '' }),
    (e: { code?: string; message?: string }) => ({
      code: e.code ?? 'none',
      message: String(e.message),
    }),
  )
  return waitAtMost(systemClock, ended, ENDED_WITHIN_MS).catch(() => ({
    code: 'still running',
    message: '',
  }))
}

/** migrate of `url` with the embedded migrations and `extra` after them, given a deadline of `seconds`. */
export const migrateWithin = (url: string, extra: readonly Migration[], seconds = 3) =>
  migrate({
    url,
    log: silentLogger,
    migrations: [...migrations, ...extra],
    deadline: deadlineIn(seconds),
  })
