// migrate's session asks the server for a TCP keepalive of its own before it takes the migration lock: a migrator whose machine vanishes frees the lock within a minute, not 2 hours.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { migrate } from '../../src/db/migrate.ts'
import { migrations } from '../../src/db/migrations.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import { useTestDb } from '../support/db.ts'
import { deadlineIn, outcome } from '../support/migrate-outcome.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
const plainQuery = pg.Client.prototype.query as (...args: unknown[]) => Promise<unknown>
afterEach(() => {
  pg.Client.prototype.query = plainQuery as typeof pg.Client.prototype.query
})

const LOCK = 'select pg_try_advisory_lock($1) as locked'

/**
 * Each statement of every client passes through `hook` (the test's reads run on migrate's own
 * session, in turn, just before its lock's statement: a client runs one query at a time).
 */
function throughEveryQuery(
  hook: (client: pg.Client, text: unknown, run: () => Promise<unknown>) => Promise<unknown>,
) {
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    return hook(this, args[0], () => plainQuery.apply(this, args))
  } as typeof pg.Client.prototype.query
}

test('the session that takes the migration lock has the server keepalive set on it', async () => {
  let seen: Record<string, number> | undefined
  throughEveryQuery(async (client, text, run) => {
    if (text === LOCK && seen === undefined) {
      const { rows } = (await plainQuery.call(
        client,
        `select name, setting from pg_settings
          where name in ('tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_keepalives_count',
                         'tcp_user_timeout')`,
      )) as { rows: { name: string; setting: string }[] }
      seen = Object.fromEntries(rows.map((r) => [r.name, Number(r.setting)]))
    }
    return run()
  })
  await migrate({ url: t.url, log: silentLogger })
  expect(seen).toEqual({
    tcp_keepalives_count: 3,
    tcp_keepalives_idle: 30,
    tcp_keepalives_interval: 10,
    tcp_user_timeout: 60_000,
  })
})

test('a session that refuses the keepalive migrates all the same, with a warning', async () => {
  const lines: { level: string; msg: string }[] = []
  throughEveryQuery((_client, text, run) =>
    typeof text === 'string' && text.includes('tcp_keepalives_idle')
      ? Promise.reject(new Error('refused by a proxy'))
      : run(),
  )
  const result = await migrate({
    url: t.url,
    log: createLogger('info', (l) => lines.push(JSON.parse(l))),
  })
  expect(result.version).toBeGreaterThan(0)
  expect(lines.filter((l) => l.msg.includes('TCP keepalive')).map((l) => l.level)).toEqual(['warn'])
})

test('the deadline met while the keepalive is being set stops the run there: no migration lock taken after it, no keepalive warning', async () => {
  const lines: { level: string; msg: string }[] = []
  let lockTakes = 0
  throughEveryQuery((client, text, run) => {
    if (text === LOCK) lockTakes++
    // The server slow to answer it (a database under load): still running when the deadline's
    // cancel comes.
    return typeof text === 'string' && text.includes('tcp_keepalives_idle')
      ? plainQuery.call(client, 'select pg_sleep(30)')
      : run()
  })
  const m = { version: 1108, name: '1108_never_begun', sql: 'select 1;' }
  const stopped = await outcome(
    migrate({
      url: t.url,
      log: createLogger('info', (l) => lines.push(JSON.parse(l))),
      migrations: [...migrations, m],
      deadline: deadlineIn(2),
    }),
  )
  expect({
    stopped,
    lockTakes,
    told: lines.filter((l) => l.msg.includes('TCP keepalive')).length,
  }).toEqual({
    stopped: {
      code: 'migration_deadline',
      message: expect.stringContaining('while checking its session: nothing was changed'),
    },
    lockTakes: 0,
    told: 0,
  })
})
