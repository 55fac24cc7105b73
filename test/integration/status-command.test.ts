// `outbox-mailer status`: the command run as a process against real databases: healthy, unreachable, schema, several, --json, read-only.
import {
  afterAll,
  beforeAll,
  beforeEach,
  describe,
  expect,
  setDefaultTimeout,
  test,
} from 'bun:test'
import { randomBytes } from 'node:crypto'
import { type AddressInfo, createServer, type Socket } from 'node:net'
import { join, resolve } from 'node:path'
import { createServer as createTlsServer } from 'node:tls'
import pg from 'pg'
import { latestVersion, migrations } from '../../src/db/migrations.ts'
import { LISTENER_APPLICATION_NAME } from '../../src/outbox/listen-session.ts'
import { recentFailures } from '../../src/outbox/recent-failures.ts'
import { testCluster } from '../preload.ts'
import { BUILD_HOOK_TIMEOUT_MS, compiledBinary } from '../support/binary.ts'
import { closedPort } from '../support/closed-port.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { NO_CREDENTIAL_REFUSED } from '../support/no-credential-refused.ts'
import { adminQuery } from '../support/postgres.ts'
import { withRoleRefusedConnect } from '../support/refused-connect-role.ts'
import { generateTestCertificate } from '../support/test-certificate.ts'
import { startTransactionPooler } from '../support/transaction-pooler.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

// The compiled binary, as shipped: 34 runs of the command, each of which started from the
// sources took twice as long (transpiling every module at each start).
let bin: string
// Row data the command must never print: it reads counts and codes only.
const ADDRESS = `secret-recipient-${randomBytes(4).toString('hex')}@example.com`
const SUBJECT = `secret subject ${randomBytes(4).toString('hex')}`
// Built at run time: a leaked password is unmistakable, and no literal sits in the repo.
const readerPassword = `pw-${randomBytes(12).toString('hex')}`
const reader = `status_reader_${process.pid}`

async function runStatus(args: string[], env: Record<string, string>) {
  const p = Bun.spawn([bin, 'status', ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [code, stdout, stderr] = await Promise.all([
    p.exited,
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
  ])
  return { code, stdout, stderr }
}

/** Every key of a JSON value as a dotted path (a list's entries as `[]`), sorted. */
function keyPaths(value: unknown, at = ''): string[] {
  if (Array.isArray(value))
    return [...new Set(value.flatMap((v) => keyPaths(v, `${at}[].`)))].sort()
  if (typeof value !== 'object' || value === null) return []
  return Object.entries(value)
    .flatMap(([k, v]) => [`${at}${k}`, ...keyPaths(v, `${at}${k}.`)])
    .sort()
}

/** main.ts under bun with test/support/failing-stdout.ts preloaded: the first write to stdout throws. */
async function runMainFailingStdout(args: string[], env: Record<string, string>) {
  const root = resolve(import.meta.dir, '../..')
  const p = Bun.spawn(
    [
      process.execPath,
      '--preload',
      join(root, 'test/support/failing-stdout.ts'),
      join(root, 'src/main.ts'),
      ...args,
    ],
    { cwd: root, env: { PATH: process.env.PATH ?? '', ...env }, stdout: 'pipe', stderr: 'pipe' },
  )
  const [code, stdout, stderr] = await Promise.all([
    p.exited,
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
  ])
  return { code, stdout, stderr }
}

async function statusJson(env: Record<string, string>, args: string[] = []) {
  const r = await runStatus(['--json', ...args], env)
  expect(r.stderr).toBe('')
  return { code: r.code, report: JSON.parse(r.stdout), printed: r.stdout }
}

const message = (extra = '') =>
  `jsonb_build_object('to', jsonb_build_array('${ADDRESS}'), 'subject', '${SUBJECT}', 'text', 'body'${extra})`

let db: TestDb
beforeAll(async () => {
  ;[bin, db] = await Promise.all([compiledBinary(), createTestDb()])
}, BUILD_HOOK_TIMEOUT_MS)
afterAll(async () => {
  await db?.drop()
})
beforeEach(async () => {
  await db.reset()
  await db.pool.query('delete from mailer.mailbox_pacing')
})

describe('one database', () => {
  test('an empty, migrated database with no worker is healthy: exit 0, a table row, no reasons', async () => {
    const r = await runStatus([], { DATABASE_URL: db.url })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const [header, row, ...rest] = r.stdout.trimEnd().split('\n')
    expect(header).toMatch(/^DATABASE\s+HEALTH\s+SCHEMA\s+PENDING\s+OLDEST DUE\s+SENDING/)
    expect(row).toMatch(
      new RegExp(`^default\\s+ok\\s+${latestVersion}/${latestVersion} current\\s+0\\s+none\\s+0`),
    )
    expect(rest).toEqual([])
  })

  test('--json: counts, oldest due row, claims and their workers, live workers, listener, pauses, failures by code; no row data', async () => {
    await db.pool.query(`
      insert into mailer.email_outbox (message, status, send_at) values
        (${message()}, 'pending', now() - interval '30 seconds'),
        (${message()}, 'pending', now() + interval '1 hour'),
        (${message()}, 'sent', now());
      update mailer.email_outbox set last_error_code = 'ApplicationThrottled'
       where status = 'pending' and send_at > now();
      insert into mailer.email_outbox (message, status, attempts, lease_owner, lease_token, lease_expires_at) values
        (${message()}, 'sending', 1, 'w1', gen_random_uuid(), now() + interval '1 minute'),
        (${message()}, 'sending', 1, 'w1', gen_random_uuid(), now() + interval '1 minute'),
        (${message()}, 'sending', 1, 'w2', gen_random_uuid(), now() + interval '1 minute');
      insert into mailer.email_outbox (message, status, attempts, last_error_code, last_error) values
        (${message()}, 'failed', 1, 'invalid_recipient', 'Graph says ${ADDRESS} is not valid'),
        (${message()}, 'failed', 1, 'invalid_recipient', 'Graph says ${ADDRESS} is not valid'),
        (${message()}, 'failed', 1, 'expired', 'expired'),
        (${message()}, 'failed', 1, 'old_failure', 'long ago'),
        (${message()}, 'cancelled', 0, null, null);
      insert into mailer.email_attempts (outbox_id, attempt, outcome, error_code, error, finished_at)
        select id, 1, 'failed', last_error_code, last_error,
               case when last_error_code = 'old_failure' then now() - interval '2 days' else now() end
          from mailer.email_outbox where status = 'failed';
      insert into mailer.workers (id, host, pid, version) values ('w1', 'h', 1, 'v'), ('w2', 'h', 2, 'v');
      insert into mailer.workers (id, host, pid, version, last_heartbeat_at) values ('gone', 'h', 3, 'v', now() - interval '1 hour');
      insert into mailer.mailbox_pacing (mailbox, next_at) values
        ('${ADDRESS}', now() + interval '10 minutes'),
        ('paced@example.com', now() + interval '1 second'),
        ('queue paced@example.com', now() + interval '20 minutes');
      insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval, noted_by, noted_at)
        values ('pacing rate', now() - interval '1 hour', interval '2 seconds', 'w2', now() - interval '1 hour')`)
    const listener = new pg.Client({
      connectionString: db.url,
      application_name: 'outbox-mailer:listener',
    })
    await listener.connect()
    try {
      const { code, report, printed } = await statusJson({ DATABASE_URL: db.url })
      expect(code).toBe(0)
      expect(printed).not.toContain(ADDRESS)
      expect(printed).not.toContain(SUBJECT)
      expect(report).toEqual({
        version: expect.any(String),
        thresholds: { maxPendingAgeSeconds: 600, leaseSeconds: 60, maxSendGapSeconds: 300 },
        exitCode: 0,
        warnings: [],
        databases: [
          {
            name: 'default',
            health: 'ok',
            reasons: [],
            reachable: true,
            error: null,
            readOnly: false,
            schema: {
              verdict: 'current',
              database: latestVersion,
              binary: latestVersion,
              missing: [],
              newer: [],
            },
            counts: { pending: 2, sending: 3, sent: 1, failed: 4, cancelled: 1 },
            oldestDuePendingSeconds: expect.any(Number),
            noneSentForSeconds: expect.any(Number),
            heldBackPending: 0,
            pastExpiryPending: 0,
            claims: { rows: 3, workers: 2, overdueLeases: 0 },
            workers: { live: 2 },
            credentialRefused: NO_CREDENTIAL_REFUSED,
            listener: { sessions: 1 },
            pausedMailboxes: {
              count: 1,
              longestSeconds: expect.any(Number),
              refused: 0,
              refusedPending: 0,
            },
            pacing: { ratePerMinute: 30, notedBy: 'w2', notedAt: expect.any(String) },
            failedLast24h: {
              total: 3,
              byCode: [
                { code: 'invalid_recipient', rows: 2 },
                { code: 'expired', rows: 1 },
              ],
              complete: true,
            },
            pendingLastErrors: {
              total: 1,
              byCode: [{ code: 'ApplicationThrottled', rows: 1 }],
              complete: true,
            },
          },
        ],
      })
      // README's example of --json is this report's shape: every key it prints, and no other.
      const readme = await Bun.file(resolve(import.meta.dir, '../../README.md')).text()
      const example = /`--json` prints one object[^\n]*\n\n```json\n([\s\S]*?)```/.exec(readme)
      expect(keyPaths(JSON.parse(example![1]!))).toEqual(keyPaths(report))
      const d = report.databases[0]
      expect(d.oldestDuePendingSeconds).toBeGreaterThanOrEqual(30)
      expect(d.pausedMailboxes.longestSeconds).toBeGreaterThan(500)
      // The table says the same, and names no mailbox either.
      const table = await runStatus([], { DATABASE_URL: db.url })
      expect(table.code).toBe(0)
      expect(table.stdout).toContain(
        'default: failed in the last 24 h: invalid_recipient 2, expired 1',
      )
      expect(table.stdout).toMatch(/default: 1 mailbox\(es\) paused by a provider throttle/)
      // The rate every worker paces by, and the worker whose start noted it (a machine of an old
      // release restarted after a deploy changed the rate sets it back: it shows here).
      expect(table.stdout).toContain(
        "default: every worker paces by MAILBOX_RATE_PER_MINUTE 30, the newest worker's: noted by w2 at ",
      )
      expect(table.stdout + table.stderr).not.toContain(ADDRESS)
      expect(table.stdout + table.stderr).not.toContain(SUBJECT)
    } finally {
      await listener.end()
    }
  })

  test('a due row older than --max-pending-age, with no live worker: exit 5 and both reasons', async () => {
    await db.pool.query(
      `insert into mailer.email_outbox (message, send_at) values (${message()}, now() - interval '20 minutes')`,
    )
    const { code, report } = await statusJson({ DATABASE_URL: db.url })
    expect(code).toBe(5)
    expect(report.databases[0].health).toBe('attention')
    expect(report.databases[0].reasons).toEqual([
      expect.stringMatching(
        /^the oldest due pending row has waited 1[23]\d\d s \(more than 600 s\)$/,
      ),
      'rows are due and no worker has beaten in the registry within twice its LEASE_SECONDS (120 s for one that does not note it)',
    ])
    // A worker beating and a wider bound: mail is flowing, slowly.
    await db.pool.query(
      `insert into mailer.workers (id, host, pid, version) values ('w1', 'h', 1, 'v')`,
    )
    const wide = await statusJson({ DATABASE_URL: db.url }, ['--max-pending-age', '3600'])
    expect(wide.code).toBe(0)
  })

  test('a Graph outage as the database records it (a throttle pause, the rows given back after their 503s, the first of them come 7 minutes ago, after the last send): exit 5 naming it, 420 s; --max-send-gap 900: 0', async () => {
    await db.pool.query(`
      insert into mailer.workers (id, host, pid, version) values ('w1', 'h', 1, 'v');
      insert into mailer.email_outbox (message, status, created_at, sent_at) values
        (${message()}, 'sent', now() - interval '9 minutes', now() - interval '8 minutes');
      insert into mailer.email_outbox (message, send_at, created_at, last_error_code) values
        (${message()}, now() + interval '20 seconds', now() - interval '7 minutes', 'ServiceUnavailable'),
        (${message()}, now() + interval '20 seconds', now() - interval '6 minutes', 'mailbox_paused');
      insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval)
        values ('${ADDRESS}', now() + interval '20 seconds', interval '0')`)
    const { code, report } = await statusJson({ DATABASE_URL: db.url })
    expect({ code, reasons: report.databases[0].reasons }).toEqual({
      code: 5,
      reasons: [
        expect.stringMatching(
          /^no row sent for 4[12]\d s \(more than --max-send-gap, 300 s\) while 2 pending row\(s\) wait on 1 sender mailbox\(es\) paused by a provider throttle: most likely a Graph outage/,
        ),
      ],
    })
    const wide = await statusJson({ DATABASE_URL: db.url }, ['--max-send-gap', '900'])
    expect({ code: wide.code, thresholds: wide.report.thresholds }).toEqual({
      code: 0,
      thresholds: { maxPendingAgeSeconds: 600, leaseSeconds: 60, maxSendGapSeconds: 900 },
    })
  })

  test('claims whose lease ended a lease length ago and no worker took back: exit 5', async () => {
    await db.pool.query(`
      insert into mailer.email_outbox (message, status, attempts, lease_owner, lease_token, lease_expires_at)
      values (${message()}, 'sending', 1, 'w1', gen_random_uuid(), now() - interval '5 minutes')`)
    const { code, report } = await statusJson({ DATABASE_URL: db.url, LEASE_SECONDS: '30' })
    expect(code).toBe(5)
    expect(report.databases[0].claims).toEqual({ rows: 1, workers: 1, overdueLeases: 1 })
    expect(report.databases[0].reasons).toEqual([
      '1 claimed row(s) whose lease ended over 30 s ago and that no worker took back: is any worker running?',
    ])
  })

  test('a read held by a lock is named with the lock (55P03, at half --timeout), the reads after it are skipped, and it needs attention', async () => {
    const locker = new pg.Client({ connectionString: db.url })
    await locker.connect()
    try {
      await locker.query('begin; lock table mailer.email_outbox in access exclusive mode')
      // The lock holds the counts read until its lock_timeout (half --timeout); connecting and the
      // schema's read come first within --timeout too, so it is not 0.5 s: a connect taking 600 ms
      // (a loaded machine) timed out, exit 4.
      const { code, report } = await statusJson({ DATABASE_URL: db.url }, ['--timeout', '3'])
      expect(code).toBe(5)
      const d = report.databases[0]
      expect(d.reachable).toBe(true)
      expect(d.counts).toBeNull()
      expect(d.reasons).toEqual([
        expect.stringMatching(
          /^counts not read: 55P03: canceling statement due to lock timeout: a lock on mailer\.email_outbox held by pid \d+ /,
        ),
        "workers, mailbox pauses, pacing rate, failures, pending rows' errors not read after that (so as to end in time)",
      ])
    } finally {
      await locker.query('rollback')
      await locker.end()
    }
  })

  test('it never writes: under a role that may only read, with every write refused, it reads all', async () => {
    await db.pool.query(`
      insert into mailer.email_outbox (message, send_at) values (${message()}, now());
      insert into mailer.workers (id, host, pid, version) values ('w1', 'h', 1, 'v')`)
    const cluster = await testCluster()
    const dbName = new URL(db.url).pathname.slice(1)
    await adminQuery(cluster.admin, `create role ${reader} login password '${readerPassword}'`)
    try {
      // SELECT only, no TEMP, and writes refused whatever the grants: a write the command tried would
      // fail its read, and the report would say so.
      await adminQuery(
        cluster.url(dbName),
        `
        revoke all on database ${dbName} from public;
        grant connect on database ${dbName} to ${reader};
        grant usage on schema mailer to ${reader};
        grant select on all tables in schema mailer to ${reader};
        alter role ${reader} set default_transaction_read_only = on`,
      )
      const url = new URL(db.url)
      url.username = reader
      url.password = readerPassword
      const { code, report, printed } = await statusJson({ DATABASE_URL: url.toString() })
      expect(report.databases[0].reasons).toEqual([])
      expect(code).toBe(0)
      expect(report.databases[0].counts).toEqual({
        pending: 1,
        sending: 0,
        sent: 0,
        failed: 0,
        cancelled: 0,
      })
      expect(report.databases[0].workers).toEqual({ live: 1 })
      expect(printed).not.toContain(readerPassword)
    } finally {
      await adminQuery(
        cluster.url(dbName),
        `
        revoke all on all tables in schema mailer from ${reader};
        revoke usage on schema mailer from ${reader};
        revoke connect on database ${dbName} from ${reader};
        grant connect, temporary on database ${dbName} to public`,
      ).catch(() => {})
      await adminQuery(cluster.admin, `drop role if exists ${reader}`)
    }
  })

  // Three runs of the binary and two ALTER DATABASEs: 20.7 s of 30 s in CI (round 46), 27.9 s on 16
  // (round 48, tmp.yiyR0DcFAb) while the machine was loaded.
  test('a database that takes no writes (set read-only, as a demoted primary or a provider over quota; a standby alike): exit 5, attention, readOnly, the reason named', async () => {
    const cluster = await testCluster()
    const dbName = new URL(db.url).pathname.slice(1)
    // Sessions opened from now on start read-only: every write of a worker's would raise 25006.
    await adminQuery(
      cluster.admin,
      `alter database ${dbName} set default_transaction_read_only = on`,
    )
    try {
      const { code, report } = await statusJson({ DATABASE_URL: db.url })
      const d = report.databases[0]
      expect([code, d.health, d.readOnly]).toEqual([5, 'attention', true])
      expect(d.reasons).toEqual([
        'the database takes no writes (a hot standby, or set read-only): no row can be claimed, sent or enqueued; point the URL at the primary',
      ])
      const table = await runStatus([], { DATABASE_URL: db.url })
      expect(table.stdout).toMatch(/^default\s+attention\s/m)
      expect(table.stdout).toContain('default: the database takes no writes')
    } finally {
      await adminQuery(
        cluster.admin,
        `alter database ${dbName} reset default_transaction_read_only`,
      )
    }
    // Read-write again: no such reason (the role-level default of the read-only test above is the
    // status role's own, not the database's, and says nothing of the worker's writes).
    const { code, report } = await statusJson({ DATABASE_URL: db.url })
    expect([code, report.databases[0].readOnly]).toEqual([0, false])
  }, 90_000)

  // A role of its own for one test: login, CONNECT on the test database, then `grants`; dropped after.
  async function withRole(
    name: string,
    grants: string,
    run: (url: string) => Promise<void>,
  ): Promise<void> {
    const cluster = await testCluster()
    const dbName = new URL(db.url).pathname.slice(1)
    const password = `pw-${randomBytes(12).toString('hex')}`
    await adminQuery(cluster.admin, `create role ${name} login password '${password}'`)
    try {
      await adminQuery(
        cluster.url(dbName),
        `grant connect on database ${dbName} to ${name}; ${grants}`,
      )
      const url = new URL(db.url)
      url.username = name
      url.password = password
      await run(url.toString())
    } finally {
      await adminQuery(cluster.url(dbName), `drop owned by ${name}`).catch(() => {})
      await adminQuery(cluster.admin, `drop role if exists ${name}`)
    }
  }

  test('a role without rights on mailer.*: exit 6, health permission (not unreachable), the SQLSTATE named', async () => {
    await withRole(`status_norights_${process.pid}`, '', async (url) => {
      const { code, report } = await statusJson({ DATABASE_URL: url })
      expect(code).toBe(6)
      const d = report.databases[0]
      expect(d).toMatchObject({
        health: 'permission',
        reachable: true,
        error: { code: '42501' },
        schema: null,
        counts: null,
      })
      expect(d.reasons).toEqual([
        expect.stringMatching(
          /^the role in postgres:\/\/status_norights_\d+:\*\*\*@[^ ]+ may not read the mailer schema: 42501: permission denied for schema mailer: grant it CONNECT on the database, USAGE on schema mailer and SELECT on its tables$/,
        ),
      ])
      const table = await runStatus([], { DATABASE_URL: url })
      expect(table.code).toBe(6)
      expect(table.stdout).toMatch(/^default\s+permission\s+-\s/m)
    })
  })

  test('a role refused CONNECT on the database (42501 at connect): exit 6, health permission (not unreachable), CONNECT named', async () => {
    await withRoleRefusedConnect(await testCluster(), db.url, 'status_noconnect', async (url) => {
      const { code, report } = await statusJson({ DATABASE_URL: url.toString() })
      expect(code).toBe(6)
      const d = report.databases[0]
      expect(d).toMatchObject({
        health: 'permission',
        reachable: true,
        error: { code: '42501' },
        readOnly: null,
        schema: null,
        counts: null,
      })
      expect(d.reasons).toEqual([
        expect.stringMatching(
          /^the role in postgres:\/\/status_noconnect_\d+:\*\*\*@[^ ]+ may not read the mailer schema: 42501: permission denied for database "?\w+"?: grant it CONNECT on the database, USAGE on schema mailer and SELECT on its tables$/,
        ),
      ])
      const table = await runStatus([], { DATABASE_URL: url.toString() })
      expect(table.code).toBe(6)
      expect(table.stdout).toMatch(/^default\s+permission\s+-\s/m)
    })
  })

  test.each([
    ['a wrong password', '28P01', 'the password was refused (or the role does not exist)'],
    ['a database that does not exist', '3D000', 'the database does not exist'],
  ] as const)(
    'a login refused for %s: exit 4, unreachable, the cause (SQLSTATE %s) and what to check named, the password masked',
    async (_, sqlstate, cause) => {
      const url = new URL(db.url)
      const password = url.password || 'unset'
      if (sqlstate === '28P01') url.password = `${password}-not-${randomBytes(6).toString('hex')}`
      else url.pathname = `/no_such_db_${process.pid}`
      const { code, report, printed } = await statusJson({ DATABASE_URL: url.toString() })
      expect(code).toBe(4)
      const d = report.databases[0]
      expect(d).toMatchObject({
        health: 'unreachable',
        reachable: false,
        error: { code: sqlstate },
      })
      expect(d.reasons).toEqual([expect.stringContaining(`: ${cause}: check `)])
      if (sqlstate === '28P01') expect(printed).not.toContain(url.password)
    },
  )

  test('a role that may read the schema version but not the outbox: exit 6, the refused read named, the rest skipped', async () => {
    await withRole(
      `status_partial_${process.pid}`,
      `grant usage on schema mailer to status_partial_${process.pid};
       grant select on mailer.schema_migrations to status_partial_${process.pid}`,
      async (url) => {
        const { code, report } = await statusJson({ DATABASE_URL: url })
        expect(code).toBe(6)
        const d = report.databases[0]
        expect(d).toMatchObject({ health: 'permission', reachable: true, error: null })
        expect(d.schema.verdict).toBe('current')
        expect(d.reasons).toEqual([
          expect.stringMatching(
            // The counts read mailbox_pacing too (its pauses), which Postgres may check first.
            /^counts not read: 42501: permission denied for table (email_outbox|mailbox_pacing): grant the role CONNECT/,
          ),
          "workers, mailbox pauses, pacing rate, failures, pending rows' errors not read after that (so as to end in time)",
        ])
      },
    )
  })

  test('through a transaction pooler (which refuses startup parameters) it reads everything', async () => {
    await db.pool.query(`
      insert into mailer.email_outbox (message, send_at) values (${message()}, now());
      insert into mailer.workers (id, host, pid, version) values ('w1', 'h', 1, 'v')`)
    const pooler = await startTransactionPooler(db.url)
    try {
      const { code, report } = await statusJson({ DATABASE_URL: pooler.url })
      expect(report.databases[0].reasons).toEqual([])
      expect(code).toBe(0)
      expect(report.databases[0].counts.pending).toBe(1)
    } finally {
      await pooler.close()
    }
  })

  test("timestamps out of a Date's range (a pacing rate hand-set to -infinity, as clearing every pause at once might write; a pause until infinity; a year past 275760) are reported, not a crash", async () => {
    await db.pool.query(`
      insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval, noted_by, noted_at) values
        ('pacing rate', '-infinity', interval '2 seconds', 'w2', '-infinity'),
        ('held@example.com', 'infinity', null, null, now());
      insert into mailer.workers (id, host, pid, version, started_at, last_heartbeat_at)
        values ('w3', 'h', 1, 'v', '-infinity', '290000-01-01')`)
    const { code, report } = await statusJson({ DATABASE_URL: db.url })
    expect({ code, ...report.databases[0] }).toMatchObject({
      code: 0,
      reasons: [],
      pausedMailboxes: { count: 1, longestSeconds: null, refused: 0, refusedPending: 0 },
      pacing: { ratePerMinute: 30, notedBy: 'w2', notedAt: '-infinity' },
    })
    const text = await runStatus([], { DATABASE_URL: db.url })
    expect({ code: text.code, stderr: text.stderr }).toEqual({ code: 0, stderr: '' })
    expect(text.stdout).toContain('the longest with no end (next_at infinity)')
    expect(text.stdout).toContain('noted by w2 at -infinity')
  })

  // Two runs of main.ts from the sources (each transpiles every module it loads): 30.2 s, cut at
  // 30 s, on 16 in CI (round 49, load 20-29, eight test runs beside it).
  test("an error that ends it past its reads (its report's write to stdout failing): exit 1, said on stderr, stdout left empty for the report it would have been", async () => {
    for (const args of [['--json'], []]) {
      const r = await runMainFailingStdout(['status', ...args], { DATABASE_URL: db.url })
      expect({ args, code: r.code, stdout: r.stdout, said: r.stderr.includes('EPIPE') }).toEqual({
        args,
        code: 1,
        stdout: '',
        said: true,
      })
    }
  }, 90_000)

  test('bad flags are refused with exit 2 before the environment is read', async () => {
    for (const args of [
      ['--max-pending-age', 'soon'],
      ['--max-send-gap', '0'],
      ['--timeout', '0'],
      ['--verbose'],
    ]) {
      const r = await runStatus(args, {})
      expect(r.code).toBe(2)
      expect(r.stdout).toBe('')
    }
  })
})

describe('with a real worker', () => {
  test('a running serve --role worker shows as one live worker with its LISTEN session; stopped, as none', async () => {
    const serve = Bun.spawn([bin, 'serve', '--role', 'worker'], {
      env: {
        PATH: process.env.PATH ?? '',
        DATABASE_URL: db.url,
        MAIL_TRANSPORT: 'discard',
        MAIL_FROM: 'outbox@example.com',
        HOST: '127.0.0.1',
        // Any port the system gives: nothing connects to it, and one picked here could be taken first.
        PORT: '0',
        LOG_LEVEL: 'warn',
      },
      stdout: 'ignore',
      stderr: 'pipe',
    })
    try {
      // The worker registers with its first reclaim and listens once started: waited for in the
      // database first (a query a poll), not with a run of the binary a poll, which burned one
      // status process every 25 ms of serve's start (seconds of it under load).
      await pollUntil(async () => {
        const { rows } = await db.pool.query<{ workers: number; listening: number }>(
          `select (select count(*) from mailer.workers)::int as workers,
                  (select count(*) from pg_stat_activity
                    where datname = current_database() and application_name = $1)::int as listening`,
          [LISTENER_APPLICATION_NAME],
        )
        return rows[0]!.workers > 0 && rows[0]!.listening > 0 ? true : undefined
      }, 20_000)
      const seen = await pollUntil(
        async () => {
          const { report } = await statusJson({ DATABASE_URL: db.url })
          const d = report.databases[0]
          return d.workers.live === 1 && d.listener.sessions === 1 ? d : undefined
        },
        20_000,
        250,
      )
      expect(seen.health).toBe('ok')
    } finally {
      serve.kill('SIGTERM')
    }
    expect(await serve.exited).toBe(0)
    // A clean stop leaves the registry at once; its session's backend ends when it sees the socket close.
    const { report } = await statusJson({ DATABASE_URL: db.url })
    expect(report.databases[0].workers).toEqual({ live: 0 })
    await pollUntil(async () => {
      const { report } = await statusJson({ DATABASE_URL: db.url })
      return report.databases[0].listener.sessions === 0 ? true : undefined
    })
  })
})

describe('failures of the last 24 h', () => {
  test('only the newest failed rows are looked at (a bounded read), and a capped count says so', async () => {
    // Five failed rows, ids in creation order: the two newest failed recently, one long ago.
    await db.pool.query(`
      insert into mailer.email_outbox (message, status, attempts, last_error_code)
      select ${message()}, 'failed', 1, c from unnest(array['a', 'b', 'old', 'c', 'd']) c;
      insert into mailer.email_attempts (outbox_id, attempt, outcome, error_code, finished_at)
      select id, 1, 'failed', last_error_code,
             case when last_error_code = 'old' then now() - interval '3 days' else now() end
        from mailer.email_outbox`)
    const read = (scanLimit: number) => recentFailures(db.db, { hours: 24, limit: 3, scanLimit })
    expect(await read(10)).toEqual({
      total: 4,
      byCode: [
        { code: 'a', rows: 1 },
        { code: 'b', rows: 1 },
        { code: 'c', rows: 1 },
      ],
      complete: true,
    })
    expect(await read(3)).toEqual({
      total: 2,
      byCode: [
        { code: 'c', rows: 1 },
        { code: 'd', rows: 1 },
      ],
      complete: false,
    })
    // All five looked at: complete; one row left out: not.
    expect([(await read(5)).complete, (await read(4)).complete]).toEqual([true, false])
  })
})

describe('pending rows waiting after an error', () => {
  test("a refused credential or MAIL_FROM, told by the waiting rows' last error codes (JSON and a line), the exit code unchanged", async () => {
    // What an expired secret and a mistyped MAIL_FROM leave: rows pending, uncounted, due again
    // in a while, each with Graph's or Entra's code; the workers' logs say why, status did not.
    await db.pool.query(`
      insert into mailer.email_outbox (message, status, send_at, last_error_code, last_error) values
        (${message()}, 'pending', now() + interval '1 minute', 'AADSTS7000222', 'secret for ${ADDRESS} expired'),
        (${message()}, 'pending', now() + interval '1 minute', 'AADSTS7000222', 'secret expired'),
        (${message()}, 'pending', now() + interval '1 minute', 'AADSTS7000222', 'secret expired'),
        (${message()}, 'pending', now() - interval '5 seconds', 'ErrorInvalidUser', 'no mailbox'),
        (${message()}, 'pending', now() - interval '5 seconds', null, null),
        (${message()}, 'failed', now(), 'invalid_recipient', 'bad');
      insert into mailer.workers (id, host, pid, version) values ('w1', 'h', 1, 'v')`)
    const { code, report, printed } = await statusJson({ DATABASE_URL: db.url })
    expect(code).toBe(0)
    expect(printed).not.toContain(ADDRESS)
    expect(report.databases[0].pendingLastErrors).toEqual({
      total: 4,
      byCode: [
        { code: 'AADSTS7000222', rows: 3 },
        { code: 'ErrorInvalidUser', rows: 1 },
      ],
      complete: true,
    })
    const table = await runStatus([], { DATABASE_URL: db.url })
    expect(table.stdout).toContain(
      "default: pending rows whose last try met an error, by its code: AADSTS7000222 3, ErrorInvalidUser 1 (the workers' log and /readyz say why; GET /v1/outbox?status=pending&lastErrorCode=CODE lists them)",
    )
  })
})

describe('schema', () => {
  const extra: string[] = []
  afterAll(async () => {
    const cluster = await testCluster()
    for (const name of extra) {
      await adminQuery(cluster.admin, `drop database if exists ${name} with (force)`)
    }
  })
  async function cloneWith(statements: string): Promise<string> {
    const cluster = await testCluster()
    const name = `outbox_status_${extra.length}_${process.pid}`
    extra.push(name)
    await adminQuery(cluster.admin, `create database ${name} template ${cluster.templateName}`)
    if (statements) await adminQuery(cluster.url(name), statements)
    return cluster.url(name)
  }

  // Four databases cloned and five runs of the binary: cut at 30 s on 16 in CI (round 49, load
  // 20-29, eight test runs beside it).
  test('behind, ahead, missing: exit 3, each named with both versions; counts not read', async () => {
    const behind = await cloneWith(
      `delete from mailer.schema_migrations where version = ${latestVersion}`,
    )
    const ahead = await cloneWith(
      `insert into mailer.schema_migrations (version, name, checksum) values (9999, '9999_future', 'x')`,
    )
    const compatible = await cloneWith(
      `insert into mailer.schema_migrations (version, name, checksum, older_binaries_compatible) values (9999, '9999_future', 'x', true)`,
    )
    const missing = await cloneWith('drop schema mailer cascade')
    const cases: [string, number, string, number | null][] = [
      // Versions may skip numbers: the one before the latest is the list's, not latest − 1.
      [behind, 3, 'behind', migrations.at(-2)?.version ?? null],
      [ahead, 3, 'ahead', 9999],
      [compatible, 0, 'current', 9999],
      [missing, 3, 'missing', null],
    ]
    for (const [url, exit, verdict, version] of cases) {
      const { code, report } = await statusJson({ DATABASE_URL: url })
      expect({ verdict: report.databases[0].schema.verdict, code }).toEqual({ verdict, code: exit })
      expect(report.databases[0].schema.database).toBe(version)
      expect(report.databases[0].schema.binary).toBe(latestVersion)
      if (exit === 3) {
        expect(report.databases[0].health).toBe('schema')
        expect(report.databases[0].counts).toBeNull()
        expect(report.databases[0].reasons[0]).toContain(`this binary ${latestVersion}`)
      }
    }
    const table = await runStatus([], { DATABASE_URL: behind })
    expect(table.stdout).toContain(
      `default: schema behind (schema ${migrations.at(-2)?.version}, this binary ${latestVersion}; lacks `,
    )
  }, 90_000)
})

describe('reachability and several databases', () => {
  test('a server that accepts and never answers: exit 4, code timeout, within --timeout', async () => {
    const sockets: Socket[] = []
    const silent = createServer((s) => {
      sockets.push(s)
      s.resume()
    })
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
    try {
      const port = (silent.address() as AddressInfo).port
      const { code, report } = await statusJson(
        { DATABASE_URL: `postgres://app@127.0.0.1:${port}/app` },
        ['--timeout', '0.5'],
      )
      expect(code).toBe(4)
      expect(report.databases[0].error).toEqual({
        code: 'timeout',
        message: 'Connection terminated due to connection timeout',
      })
    } finally {
      for (const s of sockets) s.destroy()
      silent.close()
    }
  })

  test('a server that hangs up at once: exit 4, code connection_terminated (pg gives it none)', async () => {
    // It reads the startup packet, then ends (FIN): a destroy with the packet unread sends a reset,
    // which pg names ECONNRESET, and whether the packet arrived first is a race.
    const closing = createServer((s) => s.once('data', () => s.end()))
    await new Promise<void>((r) => closing.listen(0, '127.0.0.1', r))
    try {
      const port = (closing.address() as AddressInfo).port
      const { code, report } = await statusJson({
        DATABASE_URL: `postgres://app@127.0.0.1:${port}/app`,
      })
      expect(code).toBe(4)
      expect(report.databases[0].error.code).toBe('connection_terminated')
    } finally {
      closing.close()
    }
  })

  test('a server that refuses TLS: exit 4, code tls_refused (pg gives it none), named in the table too', async () => {
    // The test cluster serves no TLS: it answers the client's SSLRequest with N.
    const url = `${db.url}?ssl=true`
    const { code, report } = await statusJson({ DATABASE_URL: url })
    expect(code).toBe(4)
    expect(report.databases[0].error).toEqual({
      code: 'tls_refused',
      message: 'The server does not support SSL connections',
    })
    const table = await runStatus([], { DATABASE_URL: url })
    expect(table.stdout).toContain(': tls_refused: The server does not support SSL connections')
  })

  test('a certificate the client does not trust: exit 4, code tls_certificate, the TLS code kept in the message', async () => {
    // Accepts the SSLRequest, then offers a self-signed certificate that no CA vouches for.
    const { certPem, keyPem } = await generateTestCertificate({ commonName: 'localhost' })
    const tlsServer = createTlsServer({ key: keyPem, cert: certPem }, (s) => s.resume())
    tlsServer.on('tlsClientError', () => {})
    const front = createServer((s) => {
      s.on('error', () => {})
      s.once('data', () => {
        s.write('S')
        tlsServer.emit('connection', s)
      })
    })
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r))
    try {
      const port = (front.address() as AddressInfo).port
      const { code, report } = await statusJson({
        DATABASE_URL: `postgres://app@127.0.0.1:${port}/app?ssl=true`,
      })
      expect(code).toBe(4)
      expect(report.databases[0].error.code).toBe('tls_certificate')
      expect(report.databases[0].error.message).toContain('DEPTH_ZERO_SELF_SIGNED_CERT')
    } finally {
      front.close()
    }
  })

  test('an unreachable database: exit 4 with the error code, its password masked; the other still reported', async () => {
    const port = await closedPort()
    const password = `pw-${randomBytes(12).toString('hex')}`
    const down = `postgres://app:${password}@127.0.0.1:${port}/app`
    await db.pool.query(`
      insert into mailer.email_outbox (message) values (${message()});
      insert into mailer.workers (id, host, pid, version) values ('w1', 'h', 1, 'v')`)
    const databases = JSON.stringify([
      { name: 'shop', url: db.url },
      { name: 'crm', url: down },
    ])
    const { code, report, printed } = await statusJson({
      MAILER_DATABASES: databases,
      LEASE_SECONDS: '60',
    })
    expect(code).toBe(4)
    expect(printed).not.toContain(password)
    const [shop, crm] = report.databases
    expect(shop).toMatchObject({ name: 'shop', health: 'ok', counts: { pending: 1 } })
    expect(crm).toMatchObject({
      name: 'crm',
      health: 'unreachable',
      reachable: false,
      error: { code: 'ECONNREFUSED' },
      schema: null,
      counts: null,
    })
    expect(crm.reasons[0]).toContain(`postgres://app:***@127.0.0.1:${port}/app`)
    const table = await runStatus([], { MAILER_DATABASES: databases })
    expect(table.code).toBe(4)
    expect(table.stdout + table.stderr).not.toContain(password)
    expect(table.stdout).toMatch(/^shop\s+ok\s/m)
    expect(table.stdout).toMatch(/^crm\s+unreachable\s+-\s/m)
    expect(table.stdout).toContain('crm: cannot read (postgres://app:***@')
  })
})
