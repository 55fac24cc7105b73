// `bun run bench/enqueue-commits.ts [seconds] [reps]`: how many enqueuing transactions per second the application's database commits, with and without the NOTIFY.
//
// Every statement that inserts outbox rows fires one `pg_notify('mailer_outbox', '')` (0001's
// statement-level trigger), sent at commit. A transaction with a pending notification takes a
// cluster-wide lock at commit and holds it through its commit record's flush, so notifying
// transactions commit one at a time. This measures what that costs the application: clients, each
// on its own connection, committing one-row transactions as fast as they can for `seconds`
// (default 5), per variant and concurrency, the variants taking turns `reps` times (default 3):
// - a plain insert into a table of the application's own (no outbox; what the database allows);
// - `mailer.enqueue_email` as shipped;
// - `mailer.enqueue_email` with the NOTIFY trigger disabled (the worker would then only poll);
// - graphile-worker's `add_job` (its own NOTIFY per insert);
// - ten `mailer.enqueue_email` calls per transaction (one notification for the ten);
// - the trigger path: an insert into an `inquiries` table whose row trigger enqueues a mail
//   (`mailer.enqueue_from_row`, as `bun run dev` sets up), against the same insert without it;
// - `mailer.enqueue_email` as released before round 18 (0001's, migrated up to 0010), which inserted
//   every mail with ON CONFLICT.
// Reported: commits per second (median of the reps) at each concurrency, mails per second too where
// a transaction enqueues several; and WAL bytes per mail (the cluster's, over the 1-client windows).
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { migrations } from '../src/db/migrations.ts'
import { silentLogger } from '../src/log.ts'
import { startBenchCluster } from './cluster.ts'
import { median } from './percentiles.ts'
import { fmt } from './report.ts'
import { lsnBytes } from './server-stats.ts'
import { graphileSystem } from './systems/graphile.ts'
import { OUTBOX_MESSAGE } from './systems/outbox-engine.ts'
import { openProbe } from './systems/probe.ts'

const [seconds, reps] = [5, 3].map((d, i) => {
  const arg = process.argv[2 + i]
  const n = arg === undefined ? d : Number(arg)
  if (!Number.isFinite(n) || n <= 0) {
    console.error('usage: bun run bench/enqueue-commits.ts [seconds > 0] [reps ≥ 1]')
    process.exit(2)
  }
  return n
}) as [number, number]
const CONCURRENCY = [1, 8, 32]

interface Variant {
  name: string
  db: string
  statement: string
  /** Mails each transaction enqueues (default 1). */
  mails?: number
}

// The application's own table, as in `bun run dev` (src/dev.ts), and its trigger on the outbox side.
const INQUIRIES = `create table public.inquiries (
  id bigint generated always as identity primary key,
  name text not null, email text not null, message text not null,
  created_at timestamptz not null default now())`
const INQUIRY_TRIGGER = `
  insert into mailer.templates (name, subject, text_body, to_addresses)
  values ('inquiry', 'New inquiry from {{name}}', '{{name}} <{{email}}> wrote: {{message}}',
          array['sales@example.com']);
  create trigger inquiries_mail after insert on public.inquiries
    for each row execute function mailer.enqueue_from_row('inquiry')`
const INSERT_INQUIRY = `insert into public.inquiries (name, email, message) values ('A', 'a@example.com', 'hello')`
const variants: Variant[] = [
  {
    name: "plain insert into the application's table",
    db: 'app_plain',
    statement: `insert into app_rows (v) values ('x')`,
  },
  {
    name: 'mailer.enqueue_email (NOTIFY per statement, as shipped)',
    db: 'app_outbox',
    statement: `select mailer.enqueue_email(${OUTBOX_MESSAGE})`,
  },
  {
    name: 'mailer.enqueue_email, NOTIFY trigger disabled',
    db: 'app_outbox_silent',
    statement: `select mailer.enqueue_email(${OUTBOX_MESSAGE})`,
  },
  {
    name: "graphile-worker's add_job",
    db: 'app_graphile',
    statement: `select graphile_worker.add_job('noop', '{}'::json)`,
  },
  {
    name: 'mailer.enqueue_email before round 18 (every insert ON CONFLICT)',
    db: 'app_outbox_0010',
    statement: `select mailer.enqueue_email(${OUTBOX_MESSAGE})`,
  },
  {
    name: 'ten mailer.enqueue_email calls per transaction',
    db: 'app_outbox',
    statement: `select mailer.enqueue_email(${OUTBOX_MESSAGE}) from generate_series(1, 10)`,
    mails: 10,
  },
  {
    name: 'an inquiry inserted, without a trigger',
    db: 'app_plain',
    statement: INSERT_INQUIRY,
  },
  {
    name: 'an inquiry inserted, its trigger enqueueing a mail (enqueue_from_row)',
    db: 'app_outbox',
    statement: INSERT_INQUIRY,
  },
]

const cluster = await startBenchCluster()
try {
  const run = async (db: string, ...statements: string[]) => {
    const c = new pg.Client(cluster.url(db))
    await c.connect()
    for (const statement of statements) await c.query(statement)
    await c.end()
  }
  const migrated = (db: string, upTo = Number.POSITIVE_INFINITY) =>
    migrate({
      url: cluster.url(db),
      log: silentLogger,
      migrations: migrations.filter((m) => m.version <= upTo),
    })
  // Each database the variants run on, and how it is set up.
  const databases: Record<string, (db: string) => Promise<unknown>> = {
    app_plain: (db) =>
      run(
        db,
        'create table app_rows (id bigint generated always as identity primary key, v text)',
        INQUIRIES,
      ),
    app_outbox: async (db) => {
      await migrated(db)
      await run(db, INQUIRIES, INQUIRY_TRIGGER)
    },
    app_outbox_silent: async (db) => {
      await migrated(db)
      await run(db, 'alter table mailer.email_outbox disable trigger email_outbox_notify')
    },
    app_outbox_0010: (db) => migrated(db, 10),
    app_graphile: async (db) => {
      const probe = await openProbe(cluster.probeUrl(db))
      await graphileSystem(db, cluster.url(db), probe, false).prepare()
      await probe.close()
    },
  }
  for (const [db, setup] of Object.entries(databases)) {
    await cluster.createDatabase(db)
    await setup(db)
  }

  const lsn = async () =>
    lsnBytes(
      (await cluster.admin.query<{ l: string }>('select pg_current_wal_insert_lsn()::text as l'))
        .rows[0]!.l,
    )
  const walPerMail = new Map<string, number[]>()

  /** Commits per second of `n` clients running `statement` in autocommit for `seconds`. */
  async function commitsPerSecond(v: Variant, n: number): Promise<number> {
    const clients = await Promise.all(
      Array.from({ length: n }, async () => {
        const c = new pg.Client({
          connectionString: cluster.url(v.db),
          application_name: 'bench:app',
        })
        await c.connect()
        await c.query(v.statement)
        return c
      }),
    )
    let commits = 0
    const wal0 = await lsn()
    const t0 = performance.now()
    const end = t0 + seconds * 1000
    await Promise.all(
      clients.map(async (c) => {
        while (performance.now() < end) {
          await c.query(v.statement)
          commits++
        }
      }),
    )
    const rate = commits / ((performance.now() - t0) / 1000)
    if (n === 1) {
      const perMail = Number((await lsn()) - wal0) / (commits * (v.mails ?? 1))
      walPerMail.set(v.name, [...(walPerMail.get(v.name) ?? []), perMail])
    }
    await Promise.all(clients.map((c) => c.end()))
    return rate
  }

  const rates = new Map<string, number[]>()
  for (let rep = 0; rep < reps; rep++) {
    for (const n of CONCURRENCY) {
      for (const v of rep % 2 === 0 ? variants : [...variants].reverse()) {
        const key = `${v.name}|${n}`
        const list = rates.get(key) ?? []
        list.push(await commitsPerSecond(v, n))
        rates.set(key, list)
        console.error(`[rep ${rep + 1}] ${v.name}, ${n} clients: ${fmt(list.at(-1)!)} commits/s`)
      }
    }
  }

  console.log(
    `\nTransactions committed per second (median of ${reps} windows of ${seconds} s), synchronous_commit=${cluster.settings.synchronous_commit}\n`,
  )
  console.log(
    `| statement | ${CONCURRENCY.map((n) => `${n} client${n > 1 ? 's' : ''}`).join(' | ')} | WAL B/mail (1 client) |`,
  )
  console.log(`| --- | ${CONCURRENCY.map(() => '---').join(' | ')} | --- |`)
  for (const v of variants) {
    console.log(
      `| ${v.name} | ${CONCURRENCY.map((n) => {
        const commits = median(rates.get(`${v.name}|${n}`) ?? [])
        return v.mails ? `${fmt(commits)} (${fmt(commits * v.mails)} mails)` : fmt(commits)
      }).join(' | ')} | ${fmt(median(walPerMail.get(v.name) ?? []))} |`,
    )
  }
} finally {
  await cluster.stop()
}
