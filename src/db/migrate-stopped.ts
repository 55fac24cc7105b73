// The error that ends a database's migrate at the run's deadline: where it stopped, what was undone or left behind, and what to do.
import type pg from 'pg'
import { AppError } from '../errors.ts'
import type { BoundedSession } from './bounded-session.ts'
import { describeHolder, readLockHolders } from './lock-holders.ts'
import type { MigrateDeadline } from './migrate-deadline.ts'
import type { Migration } from './migrations.ts'

/** Where a database's run was when the deadline came. */
export type StopPoint =
  | { step: 'before' }
  | { step: 'connect' }
  | { step: 'session' }
  | { step: 'lock' }
  | { step: 'prepare' }
  | { step: 'next'; migration: Migration }
  | { step: 'migration'; migration: Migration; outside: boolean }

/** Bounds each read the message makes: the deadline has passed, and a session gone silent is reset. */
const READ_MS = 2_000

/**
 * Sessions in the way are those whose transaction has been open this long with a lock on a table
 * of schema mailer: a lock wait the deadline stopped is at least as old, a worker's statement younger.
 */
const HOLDER_AGE_MS = 500

/** A no-transaction migration stopped mid-build leaves its index INVALID: named, never silently. */
async function invalidIndexes(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `select format('%I.%I', n.nspname, c.relname) as name
       from pg_index i
       join pg_class c on c.oid = i.indexrelid
       join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'mailer'
      where not i.indisvalid
      order by 1`,
  )
  return rows.map((r) => r.name)
}

const WHERE: Record<Exclude<StopPoint['step'], 'next' | 'migration'>, string> = {
  before: 'before its turn: nothing was done to it',
  connect: 'while connecting: nothing was done to it',
  session: 'while checking its session: nothing was changed',
  lock: "while waiting for another migrator's lock (another migrate run holds it): nothing was changed",
  prepare: 'while reading which migrations it has: nothing was changed',
}

/**
 * The deadline's error for one database (migrate-every.ts puts its name first). `session` is the
 * run's, still open after a cancel: the sessions in the way and the indexes left INVALID are read
 * on it, each read given up (and said so) when it fails or does not answer.
 */
export async function stoppedAtDeadline(o: {
  deadline: MigrateDeadline
  at: StopPoint
  applied: readonly number[]
  session: BoundedSession | null
  cause?: unknown
}): Promise<AppError> {
  const read = <T>(q: (c: pg.Client) => Promise<T>): Promise<T | null> =>
    o.session === null ? Promise.resolve(null) : o.session.within(q, READ_MS)
  const at = o.at
  const inTheWay = async () => {
    const holders = await read((c) => readLockHolders(c, HOLDER_AGE_MS))
    return holders?.length
      ? `; sessions holding locks on mailer tables: ${holders.map(describeHolder).join('; ')} (end the one in the way, or pg_terminate_backend(pid))`
      : ''
  }
  let where: string
  if (at.step === 'next') where = `before migration ${at.migration.name}: it was not begun`
  // Reading mailer.schema_migrations waits only behind a lock on it (a LOCK TABLE, VACUUM FULL or
  // ALTER TABLE left open), which the next run would wait behind too.
  else if (at.step === 'prepare') where = WHERE[at.step] + (await inTheWay())
  else if (at.step !== 'migration') where = WHERE[at.step]
  else if (!at.outside) {
    where =
      (o.session === null
        ? `during migration ${at.migration.name}, whose session was ended (the server rolls it back): nothing of it is applied`
        : `during migration ${at.migration.name}, which was rolled back: nothing of it is applied`) +
      (await inTheWay())
  } else {
    const left = await read(invalidIndexes)
    const indexes =
      left === null
        ? 'an index it was building may be left INVALID (select indexrelid::regclass from pg_index where not indisvalid names it)'
        : left.length
          ? `mailer indexes left INVALID: ${left.join(', ')} (a build stopped leaves its index so: no query uses it, writes still update it)`
          : 'no mailer index is left INVALID'
    where = `during migration ${at.migration.name}, which runs outside a transaction and is not recorded as applied: ${indexes}; the next migrate runs it again from its start, which drops what it left`
  }
  const before = o.applied.length ? `; this run applied ${o.applied.join(', ')} before it` : ''
  return new AppError(
    'migration_deadline',
    `migrate's deadline of ${o.deadline.seconds} s (MIGRATE_DEADLINE_SECONDS, or --deadline) passed ${where}${before}. Run migrate again (fly deploy runs it, fly console -C "/app/outbox-mailer migrate" by hand); a migration whose own work takes longer (an index build on a large outbox) runs by hand with --deadline 0, or with MIGRATE_DEADLINE_SECONDS raised and Fly's release_command_timeout above it`,
    {},
    { cause: o.cause },
  )
}
