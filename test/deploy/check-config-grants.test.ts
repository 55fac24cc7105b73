// check-config --connect and the service's own role: one without a grant of the deploy guide's step 7 is a problem naming what it lacks and the grant to run, before serve meets it as failing claims.
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
import { checkConfig } from '../../src/check-config.ts'
import { createTestDb, type TestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const role = `cfg_svc_${process.pid}`
// A third role, given LISTEN_DATABASE_URL: it may log in and listen, and owns nothing.
const listenRole = `cfg_lis_${process.pid}`
// Generated per run: no fixed password in the repository.
const password = `pw-${randomBytes(12).toString('hex')}`
const jwtSecret = randomBytes(32).toString('base64url')
let db: TestDb

// The deploy guide's step 7 grants for the service's role (`mailer_svc` there).
const documented = () => `
  grant usage on schema mailer to ${role};
  grant select, insert, update, delete on all tables in schema mailer to ${role};`

beforeAll(async () => {
  db = await createTestDb()
  await db.createRole(role, `login password '${password}'`)
  await db.createRole(listenRole, `login password '${password}'`)
})
beforeEach(async () => {
  await db.pool.query(`
    revoke all on schema mailer from ${role};
    revoke all on all tables in schema mailer from ${role};
    ${documented()}`)
})
afterAll(async () => {
  await db?.drop()
})

/** `db`'s URL with `r`'s login. */
function urlAs(r: string): string {
  const url = new URL(db.url)
  url.username = r
  url.password = password
  return url.toString()
}

/** check-config --connect with the service's role in DATABASE_URL, the owner's (or `listenUrl`) in LISTEN_DATABASE_URL. */
async function check(listenUrl = db.url) {
  return checkConfig(
    {
      MAIL_TRANSPORT: 'discard',
      API_JWT_SECRET: jwtSecret,
      DATABASE_URL: urlAs(role),
      LISTEN_DATABASE_URL: listenUrl,
      LISTEN_MODE: 'poll',
    },
    { connect: true, role: 'api' },
  )
}

describe('check-config --connect reads the service role’s grants', () => {
  test('the documented grants pass, and say so', async () => {
    const r = await check()
    expect(r).toMatchObject({ ok: true, problems: [] })
    expect(r.checks).toContain(
      `database "default" (DATABASE_URL): role ${role} has the grants the service needs on schema mailer`,
    )
  })

  test('a role without UPDATE on the tables is a problem naming what it lacks and the grants to run', async () => {
    await db.pool.query(`revoke update on all tables in schema mailer from ${role}`)
    const r = await check()
    expect(r.ok).toBe(false)
    expect(r.problems).toEqual([
      `database "default" (DATABASE_URL): role ${role} lacks update on every table of schema mailer: its claims would fail (SQLSTATE 42501); as the schema's owner, run the deploy guide's step 7 grants for it: grant usage on schema mailer to ${role}; grant select, insert, update, delete on all tables in schema mailer to ${role}; alter default privileges in schema mailer grant select, insert, update, delete on tables to ${role}`,
    ])
  })

  test('a table left out is named by name', async () => {
    await db.pool.query(`revoke delete on mailer.send_slots from ${role}`)
    const r = await check()
    expect(r.problems).toEqual([
      expect.stringContaining(`role ${role} lacks delete on mailer.send_slots: `),
    ])
  })

  test('a role without USAGE on the schema is told so, not only "permission denied for schema mailer"', async () => {
    await db.pool.query(`revoke usage on schema mailer from ${role}`)
    const r = await check()
    expect(r.ok).toBe(false)
    expect(r.problems).toEqual([
      expect.stringContaining(
        `database "default" (DATABASE_URL): role ${role} lacks usage on schema mailer: `,
      ),
    ])
  })

  test('where EXECUTE is revoked from PUBLIC, the functions are named and the execute grants added; trigger functions are not asked for', async () => {
    await db.pool.query('revoke execute on all functions in schema mailer from public')
    try {
      const r = await check()
      expect(r.problems).toEqual([
        expect.stringMatching(
          new RegExp(
            `role ${role} lacks execute on every function of schema mailer: .*; grant execute on all functions in schema mailer to ${role}; alter default privileges in schema mailer grant execute on functions to ${role}$`,
          ),
        ),
      ])
      await db.pool.query(`grant execute on all functions in schema mailer to ${role}`)
      expect(await check()).toMatchObject({ ok: true, problems: [] })
    } finally {
      await db.pool.query('grant execute on all functions in schema mailer to public')
    }
  })
})

describe('check-config --connect and the role of LISTEN_DATABASE_URL, which migrate runs as', () => {
  test('a role that may listen but not change the schema is a problem naming it, as migrate would fail', async () => {
    const r = await check(urlAs(listenRole))
    expect(r.ok).toBe(false)
    const database = new URL(db.url).pathname.slice(1)
    expect(r.problems).toEqual([
      `database "default" (LISTEN_DATABASE_URL): migrate, the release command, runs over this URL and would fail (SQLSTATE 42501): the role ${listenRole} may not create or change the mailer schema: migrate runs as the role that owns it (before the first migrate, one that may create schemas: grant create on database ${database} to it); set LISTEN_DATABASE_URL to that role's direct URL, the service's role staying in DATABASE_URL (deploy guide, step 7)`,
    ])
  })

  test("the schema's owner passes, and is named", async () => {
    const owner = decodeURIComponent(new URL(db.url).username)
    const r = await check()
    expect(r).toMatchObject({ ok: true, problems: [] })
    expect(r.checks).toContain(
      `database "default" (LISTEN_DATABASE_URL): role ${owner} may change the mailer schema, as migrate does`,
    )
  })
})

describe('check-config --connect with LISTEN_DATABASE_URL unset: migrate runs as the role of DATABASE_URL', () => {
  /** check-config --connect with `databaseUrl` alone. */
  const alone = (databaseUrl: string) =>
    checkConfig(
      {
        MAIL_TRANSPORT: 'discard',
        API_JWT_SECRET: jwtSecret,
        DATABASE_URL: databaseUrl,
        LISTEN_MODE: 'poll',
      },
      { connect: true, role: 'api' },
    )

  test('the service’s role, which may not change the schema, is a warning naming it and where the owner’s URL goes', async () => {
    const r = await alone(urlAs(role))
    const database = new URL(db.url).pathname.slice(1)
    // serve runs as it: not a problem, migrate may be run by hand with the owner's URL.
    expect(r).toMatchObject({ ok: true, problems: [] })
    expect(r.checks).toContain(
      `warning: database "default" (DATABASE_URL): LISTEN_DATABASE_URL is unset, so migrate, the release command, runs over this URL and would fail (SQLSTATE 42501): the role ${role} may not create or change the mailer schema: migrate runs as the role that owns it (before the first migrate, one that may create schemas: grant create on database ${database} to it); set LISTEN_DATABASE_URL to that role's direct URL, the service's role staying in DATABASE_URL (deploy guide, step 7)`,
    )
  })

  test('LISTEN_DATABASE_URL set to the same URL (one plain Postgres, as the deploy guide allows) is said to be that, not unset', async () => {
    const owner = decodeURIComponent(new URL(db.url).username)
    const same = await checkConfig(
      {
        MAIL_TRANSPORT: 'discard',
        API_JWT_SECRET: jwtSecret,
        DATABASE_URL: db.url,
        LISTEN_DATABASE_URL: db.url,
        LISTEN_MODE: 'poll',
      },
      { connect: true, role: 'api' },
    )
    expect(same).toMatchObject({ ok: true, problems: [] })
    expect(same.checks.filter((c) => c.includes('may change the mailer schema'))).toEqual([
      `database "default" (DATABASE_URL): role ${owner} may change the mailer schema, as migrate does (LISTEN_DATABASE_URL is this same URL: migrate runs over it)`,
    ])
    const database = new URL(db.url).pathname.slice(1)
    const service = await checkConfig(
      {
        MAIL_TRANSPORT: 'discard',
        API_JWT_SECRET: jwtSecret,
        DATABASE_URL: urlAs(role),
        LISTEN_DATABASE_URL: urlAs(role),
        LISTEN_MODE: 'poll',
      },
      { connect: true, role: 'api' },
    )
    expect(service.checks.filter((c) => c.includes('would fail'))).toEqual([
      `warning: database "default" (DATABASE_URL): LISTEN_DATABASE_URL is this same URL, so migrate, the release command, runs over it and would fail (SQLSTATE 42501): the role ${role} may not create or change the mailer schema: migrate runs as the role that owns it (before the first migrate, one that may create schemas: grant create on database ${database} to it); set LISTEN_DATABASE_URL to that role's direct URL, the service's role staying in DATABASE_URL (deploy guide, step 7)`,
    ])
  })

  test('the schema’s owner is named as the role migrate runs as', async () => {
    const owner = decodeURIComponent(new URL(db.url).username)
    const r = await alone(db.url)
    expect(r).toMatchObject({ ok: true, problems: [] })
    expect(r.checks).toContain(
      `database "default" (DATABASE_URL): role ${owner} may change the mailer schema, as migrate does (LISTEN_DATABASE_URL is unset: migrate runs over this URL)`,
    )
  })
})
