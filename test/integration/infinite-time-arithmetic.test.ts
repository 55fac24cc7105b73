// Guard: no timestamp difference in force that Postgres 16 and older refuse when one side is infinite, unless it reads through mailer.ms_until or is listed here with why its sides are finite.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { resolve } from 'node:path'
import { Glob } from 'bun'
import { createTestDb, type TestDb } from '../support/db.ts'
import {
  literalsOf,
  outsideBodies,
  type TimeArithmetic,
  timeArithmetic,
} from '../support/time-arithmetic.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const ROOT = resolve(import.meta.dir, '../..')
const CLAIM_PAST_PAUSED =
  'mailer.claim_past_paused(integer,text,uuid,double precision,boolean,integer,text,double precision)'

/**
 * Differences whose sides cannot be infinite, each with why. CI runs 17 and 18, where an infinite
 * side is no error: a difference added anywhere else fails this file until it reads through
 * mailer.ms_until (its t may be infinite) or is listed here (it cannot be).
 */
const SEND_AT = "send_at: 0038's email_outbox_send_at_check (isfinite)"
const BY_THE_BINARY = 'written by the binary alone, from now() plus a finite interval'
const FINITE: (TimeArithmetic & { why: string })[] = [
  {
    where: 'mailer.claim_batch(integer,text,uuid,double precision,boolean,integer)',
    line: 'order by f.send_at limit 1)) - now()) * 1000',
    why: SEND_AT,
  },
  {
    where: CLAIM_PAST_PAUSED,
    line: 'probe_in_ms := extract(epoch from least(probe_due, mailer.probe_due_hinted()) - now()) * 1000;',
    why: `probe_due_at is read only while a row is pending at it, a hint only as the least of it and that time or after a search deleted those past it (endless-pause-reads.test.ts writes both infinite): ${SEND_AT}`,
  },
  {
    where: CLAIM_PAST_PAUSED,
    line: 'select least(extract(epoch from f - now()) * 1000, probe_in_ms) into next_due_ms',
    why: `f is first_future_send_at's: ${SEND_AT}`,
  },
  {
    where: 'src/api/routes/stats.ts',
    line: 'now() - send_at of the oldest due pending row (database time); null if none',
    why: 'an OpenAPI description, not SQL',
  },
  {
    where: 'src/db/lock-holders.ts',
    line: 'floor(extract(epoch from now() - a.xact_start))::int as "openSeconds",',
    why: "pg_stat_activity's xact_start: the server's clock",
  },
  {
    where: 'src/db/lock-in-the-way.ts',
    line: 'l.granted, floor(extract(epoch from now() - a.xact_start))::int as "openSeconds",',
    why: "pg_stat_activity's xact_start: the server's clock",
  },
  {
    where: 'src/outbox/lookup-grace.ts',
    line: '+ make_interval(secs => $2) - now()) * 1000)::float8 as left_ms',
    why: `send_deadline_at, send_started_at and email_attempts.finished_at: ${BY_THE_BINARY}`,
  },
  {
    where: 'src/outbox/mailbox-pacing.ts',
    line: 'returning greatest(0, extract(epoch from q.next_at - q.turn_interval - now()) * 1000)::float8 as wait_ms',
    why: 'the queue horizon just written: an infinite next_at (a pause by hand) counts from now() (reservePacing)',
  },
  {
    where: 'src/outbox/owed-probe-end.ts',
    line: "select greatest(0, extract(epoch from least(e.ends, case when r.expires_at > now() then r.expires_at - interval '1 second' end) - now()) * 1000)::float8 as ms",
    why: `send_deadline_at and lease_expires_at: ${BY_THE_BINARY}; else now() plus the hold while no probe is out`,
  },
  {
    where: 'src/outbox/reclaim-statement.ts',
    line: '(select extract(epoch from next_end - now()) * 1000 from in_flight)::float8',
    why: `lease_expires_at: ${BY_THE_BINARY}`,
  },
  {
    where: 'src/outbox/stats.ts',
    line: '(select extract(epoch from now() - min(send_at))::float8 from mailer.email_outbox',
    why: SEND_AT,
  },
]

let t: TestDb
beforeAll(async () => {
  t = await createTestDb()
})
afterAll(async () => {
  await t?.drop()
})

/** Every function of schema mailer as the database holds it (a replaced one is no longer there). */
async function inForce(): Promise<TimeArithmetic[]> {
  const { rows } = await t.pool.query<{ name: string; src: string }>(
    `select p.oid::regprocedure::text as name, p.prosrc as src
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = 'mailer' and p.proname <> 'ms_until'
     union all
     select schemaname || '.' || viewname, definition from pg_views where schemaname = 'mailer'`,
  )
  return rows.flatMap((r) => timeArithmetic(r.name, r.src))
}

// Parsed once: the stale-entry check reads it again.
let src: Promise<TimeArithmetic[]> | undefined
function inSrc(): Promise<TimeArithmetic[]> {
  src ??= readSrc()
  return src
}

async function readSrc(): Promise<TimeArithmetic[]> {
  const files = [...new Glob('src/**/*.ts').scanSync(ROOT)].sort()
  const found = await Promise.all(
    files.map(async (f) =>
      timeArithmetic(f, literalsOf(f, await Bun.file(resolve(ROOT, f)).text())),
    ),
  )
  return found.flat()
}

async function inMigrationStatements(): Promise<TimeArithmetic[]> {
  const files = [...new Glob('sql/*.sql').scanSync(ROOT)].sort()
  const found = await Promise.all(
    files.map(async (f) =>
      timeArithmetic(f, outsideBodies(await Bun.file(resolve(ROOT, f)).text())),
    ),
  )
  return found.flat()
}

const unlisted = (found: TimeArithmetic[]) =>
  found.filter((f) => !FINITE.some((l) => l.where === f.where && l.line === f.line))

test('the guard sees x - now(), now() - x, age(x) and extract(epoch from a - b), not an interval or ms_until', () => {
  const sql = `
    select extract(epoch from p.next_at - now()) * 1000 into paused_ms;  -- the 0103 line 0107 replaced
    select now() - min(sent_at), age(created_at), extract(epoch from sent_at - started_at) from x;
    select mailer.ms_until(m.next_at - m.turn_interval), now() - interval '1 day',
           now() - make_interval(secs => 5), extract(epoch from turn_interval) * 1000 from y;`
  expect(timeArithmetic('t', sql).map((f) => f.line)).toEqual([
    'select extract(epoch from p.next_at - now()) * 1000 into paused_ms;',
    'select now() - min(sent_at), age(created_at), extract(epoch from sent_at - started_at) from x;',
    'extract(epoch from sent_at - started_at)',
  ])
})

test('every function and view of schema mailer in force', async () => {
  expect(unlisted(await inForce())).toEqual([])
})

test("src's SQL (its string and template literals)", async () => {
  expect(unlisted(await inSrc())).toEqual([])
})

test("sql/'s statements outside function bodies", async () => {
  expect(unlisted(await inMigrationStatements())).toEqual([])
})

test('every difference listed as finite is still there (a stale entry would let a new one in)', async () => {
  const found = [...(await inForce()), ...(await inSrc()), ...(await inMigrationStatements())]
  const stale = FINITE.filter((l) => !found.some((f) => f.where === l.where && f.line === l.line))
  expect(stale).toEqual([])
})

test("the catalogue says why claim_past_paused's listed differences are finite, and names pause_end's twin in src, which exists (0161)", async () => {
  const { rows } = await t.pool.query<{ claim: string | null; rule: string | null }>(
    `select obj_description($1::regprocedure, 'pg_proc') as claim,
            obj_description('mailer.pause_end(timestamptz, interval, timestamptz, interval)'::regprocedure, 'pg_proc') as rule`,
    [CLAIM_PAST_PAUSED],
  )
  expect(rows[0]?.claim).toContain('endless-pause-reads.test.ts writes them infinite')
  expect(rows[0]?.rule).toContain(
    'Invariant: the expression of pauseEnd (src/outbox/paused-now.ts)',
  )
  const pausedNow = await Bun.file(resolve(ROOT, 'src/outbox/paused-now.ts')).text()
  expect(pausedNow).toContain('export function pauseEnd(')
})
