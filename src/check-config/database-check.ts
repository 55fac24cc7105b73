// Database check: reaches one configured database and reads its schema status, grants and pooling; whether LISTEN holds on it is listen-url-check.ts's.
import pg from 'pg'
import { type DatabaseConfig, urlVariable } from '../config/database-list.ts'
import type { Config, ServeRole } from '../config.ts'
import {
  describeLocksInTheWay,
  LOCK_TIMEOUT_SQLSTATE,
  readLocksInTheWay,
} from '../db/lock-in-the-way.ts'
import { assertSchemaCurrent } from '../db/schema-state.ts'
import { readServerDatabase } from '../db/server-database.ts'
import { notUtf8Consequence, notUtf8Warning } from '../db/server-encoding.ts'
import { SessionClient } from '../db/session-settings.ts'
import { PERMISSION_DENIED_SQLSTATE } from '../db/sqlstate.ts'
import { poolRefusesTransactions, STATEMENT_POOLING_PROBLEM } from '../db/statement-pooling.ts'
import { isAppError } from '../errors.ts'
import { connectFailure } from './connect-failure.ts'
import { describe, type Findings } from './findings.ts'
import { checkGrants } from './grants-check.ts'
import { checkListenUrl } from './listen-url-check.ts'
import { noteMigrateRole } from './migrate-role-check.ts'
import { untestedVersionWarning } from './server-version.ts'
import { checkTriggerTemplates } from './trigger-templates-check.ts'

// Schema states a deploy fixes by itself (release_command runs migrate); the others need a human.
const SCHEMA_PENDING = new Set(['schema_missing', 'schema_outdated'])

export async function checkDatabase(
  d: DatabaseConfig,
  config: Config,
  role: ServeRole,
  timeoutMs: number,
) {
  // `database`: which one the URL reached (server-database.ts), when the server said.
  const out: Findings & { database?: string } = { problems: [], checks: [] }
  const label = (which: 'url' | 'listenUrl') => urlVariable(d, config.databases, which)
  const pool = new pg.Pool({
    connectionString: d.url,
    application_name: 'outbox-mailer:check-config',
    Client: SessionClient,
    max: 1,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  })
  // A refused or dropped connection surfaces through the query; the pool's own event must not crash us.
  pool.on('error', () => {})
  let reachable = false
  try {
    const { rows } = await pool.query<{ version: string; num: number; encoding: string }>(
      `select current_setting('server_version') as version, current_setting('server_version_num')::int as num,
              current_setting('server_encoding') as encoding`,
    )
    reachable = true
    out.checks.push(
      `database "${d.name}" (${label('url')}): reachable, PostgreSQL ${rows[0]?.version}`,
    )
    const untested = untestedVersionWarning(d.name, Number(rows[0]?.num))
    if (untested) out.checks.push(untested)
    // Unread, the comparison leaves this database out: the URL texts were compared already.
    out.database = await readServerDatabase(pool).catch(() => undefined)
    // As serve's start asks: a pooler in statement mode ends every transaction.
    if (await poolRefusesTransactions(pool)) {
      out.problems.push(`database "${d.name}" (${label('url')}): ${STATEMENT_POOLING_PROBLEM}`)
    }
    const encoding = rows[0]?.encoding ?? 'UTF8'
    let installRefused = false
    let schemaThere = false
    try {
      // A lock in the way fails the read at half the bound (55P03), leaving time to name its holder.
      const { newer } = await assertSchemaCurrent(pool, d.name, undefined, {
        lockTimeoutMs: timeoutMs / 2,
      })
      schemaThere = true
      out.checks.push(
        `database "${d.name}": schema current${newer.length ? ` (also has ${newer.join(', ')} from a newer release, which this one works with)` : ''}`,
      )
    } catch (e) {
      if (isAppError(e) && e.code === 'schema_missing' && encoding !== 'UTF8') {
        // migrate (the release command) refuses to install into it: the first deploy would fail.
        installRefused = true
        out.problems.push(
          `database "${d.name}": its encoding is ${encoding}, and outbox-mailer needs a UTF8 database (${notUtf8Consequence(encoding)}): \`migrate\` refuses to install into it; create one with ENCODING 'UTF8' (createdb -E UTF8 -T template0 …) and point the URLs at it`,
        )
      } else if (isAppError(e) && SCHEMA_PENDING.has(e.code)) {
        // Normal before a deploy that brings a migration: release_command applies it.
        out.checks.push(`warning: ${e.message} (the release_command does this on deploy)`)
      } else if ((e as { code?: unknown }).code === PERMISSION_DENIED_SQLSTATE) {
        // The grants check names what is lacking; the server's words name no grant.
        schemaThere = true
      } else if ((e as { code?: unknown }).code === LOCK_TIMEOUT_SQLSTATE) {
        const locks = await readLocksInTheWay(pool, 'mailer.schema_migrations').catch(() => [])
        const who = locks.length > 0 ? `: ${describeLocksInTheWay(locks)}` : ''
        out.problems.push(
          `database "${d.name}": the schema could not be read, a lock is in the way${who}; serve and migrate would wait for it: end that transaction or wait for it`,
        )
      } else {
        out.problems.push(`database "${d.name}": ${describe(e)}`)
      }
    }
    // Installed already (a release took it): warned of, not refused, as serve and migrate do.
    if (encoding !== 'UTF8' && !installRefused)
      out.checks.push(`warning: database "${d.name}": ${notUtf8Warning(encoding)}`)
    // The role serve runs its statements as (step 7's mailer_svc), not only the schema's owner.
    if (schemaThere) {
      const where = `database "${d.name}" (${label('url')})`
      try {
        const grants = await checkGrants(pool, where)
        if ('problem' in grants) out.problems.push(grants.problem)
        else out.checks.push(grants.check)
      } catch (e) {
        out.problems.push(`${where}: its grants could not be read: ${describe(e)}`)
      }
    }
    // The application's triggers (step 7): a template missing or naming a column the table lacks
    // fails every insert or every mail, which nothing else says before the first one. A role that
    // may not read the templates is the grants check's to name.
    if (schemaThere) {
      const where = `database "${d.name}"`
      try {
        out.checks.push(...(await checkTriggerTemplates(pool, where)))
      } catch (e) {
        if ((e as { code?: unknown }).code !== PERMISSION_DENIED_SQLSTATE)
          out.checks.push(
            `warning: ${where}: its triggers' templates could not be read: ${describe(e)}`,
          )
      }
    }
    // No direct URL of its own (unset, or given as this same URL): migrate (the release command)
    // runs as this role, often the service's, granted its tables only (step 7), which may not
    // change the schema.
    if (d.listenUrl === d.url) {
      const where = `database "${d.name}" (${label('url')})`
      const variables = { listen: label('listenUrl'), url: label('url') }
      await noteMigrateRole(out, pool, where, variables, d.listenUrlGiven ? 'same' : 'unset')
    }
  } catch (e) {
    out.problems.push(
      `database "${d.name}" (${label('url')}): cannot connect: ${connectFailure(e)}`,
    )
  } finally {
    await pool.end().catch(() => {})
  }

  await checkListenUrl({ d, config, role, timeoutMs, reachable, label }, out)
  return out
}
