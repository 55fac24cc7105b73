// Which database a connection reached, as the server tells it: two configured names that reach one are named together.
import type { Logger } from '../log.ts'
import type { Queryable } from './queryable.ts'

/**
 * The cluster's system_identifier (made by initdb), the server's start time and the database's
 * oid: equal for two connections only when they reached one database of one running server,
 * whatever host name, port spelling, role or pooler their URLs went through. A clone restored from
 * a physical copy (a provider's branch or snapshot, a promoted standby) keeps the identifier and
 * the oid, and is told apart by its own start. pg_control_system() and pg_postmaster_start_time()
 * are PUBLIC's.
 */
export async function readServerDatabase(q: Queryable): Promise<string> {
  const r = await q.query<{ system: string; started: string; oid: string }>(
    `select s.system_identifier::text as system, pg_postmaster_start_time()::text as started,
            d.oid::text as oid
       from pg_control_system() s, pg_database d
      where d.datname = current_database()`,
  )
  const row = r.rows[0]
  if (!row) throw new Error('pg_database has no row for current_database()')
  return `${row.system}/${row.oid}/${row.started}`
}

/** What readServerDatabase's answer says, in words. */
function serverWords(database: string): string {
  const [system, oid, started] = database.split('/')
  return `server ${system} started ${started}, database oid ${oid}`
}

/** Each configured name whose connection reached the database an earlier name reached, with that name. */
export function sameServerDatabases(
  reached: ReadonlyArray<{ name: string; database: string }>,
): { earlier: string; name: string; database: string }[] {
  const first = new Map<string, string>()
  const pairs: { earlier: string; name: string; database: string }[] = []
  for (const { name, database } of reached) {
    const earlier = first.get(database)
    if (earlier === undefined) first.set(database, name)
    else pairs.push({ earlier, name, database })
  }
  return pairs
}

/**
 * check-config's problem for each such pair: the URL texts differed (127.0.0.1 and localhost,
 * another role, a pooler), so the configuration's own comparison let them both through.
 */
export function sameServerDatabaseProblems(
  reached: ReadonlyArray<{ name: string; database: string }>,
): string[] {
  return sameServerDatabases(reached).map(
    ({ earlier, name, database }) =>
      `MAILER_DATABASES: "${earlier}" and "${name}" reach the same database (${serverWords(database)}) under URLs that differ: under two names it would be claimed twice over and its rows split between the names; list it once`,
  )
}

/**
 * serve's warning for each such pair among the names whose connection answered at start: said, not
 * refused, since a start goes on beside a database away, which no comparison can read. Never awaited.
 */
export function warnSameServerDatabases(
  handles: ReadonlyArray<{ name: string; pool: Queryable }>,
  log: Logger,
): void {
  // Those that answered are compared: one database away must not hide two names of another.
  void Promise.allSettled(
    handles.map(async (h) => ({ name: h.name, database: await readServerDatabase(h.pool) })),
  ).then(
    (read) => {
      const reached = read.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
      for (const { earlier, name, database } of sameServerDatabases(reached)) {
        log.warn('MAILER_DATABASES names one database twice: list it once', {
          db: earlier,
          alsoNamed: name,
          server: serverWords(database),
        })
      }
    },
    () => {},
  )
}
