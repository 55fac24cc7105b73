// `bun run bench/cold-pickup.ts [pairs] [variants]`: each statement of the Graph binary's first pickup, cold and warm on a new backend.
//
// A backend as the listener leaves it since round 31 (LISTEN, the sweep's claim, claim_notified
// primed for id 0), then by turns one of the variants: `claim` (nothing more), `start` (also
// start_sends for no row), `slots` (also the slot take for no slot), `sent` (also
// mark_sent_unlocked for no row), `all` (all three), `primer` (pickupPrimer for the Graph path
// without pacing, as serve primes its session since round 32: the claim, the take, the check). 200 ms later a row is committed and taken as
// the Graph binary's pickup takes it, statement by statement (the notified claim, the slot take,
// the last check with the mailbox's pause, then the settlement and the slot's release, which
// follow the send), each timed as a round trip from this process; 200 ms after that a second row
// (warm). One backend per variant per pair; medians. `unflushed` as a third argument: the database
// commits without waiting for its WAL flush (the slot take, the last check and the settlement each
// wait for one), which takes the disk, the noisiest part on a shared machine, out of the figures.
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { preparingClient } from '../src/db/prepared-statements.ts'
import type { Database } from '../src/db/schema.ts'
import { claimBatch, primeNotifiedClaim } from '../src/outbox/claim.ts'
import { markSent } from '../src/outbox/mark-sent.ts'
import { pickupPrimer } from '../src/outbox/pickup-primes.ts'
import { freeSlots, takeSlots } from '../src/outbox/send-slots.ts'
import { startSends } from '../src/outbox/start-send.ts'
import { startBenchCluster } from './cluster.ts'
import { median } from './percentiles.ts'
import { OUTBOX_MESSAGE, outboxEngineSystem } from './systems/outbox-engine.ts'
import { openProbe } from './systems/probe.ts'

const n = Number(process.argv[2] ?? 15)
const variants = (process.argv[3] || 'claim,primer,start,slots,sent,all').split(',')
const unflushed = process.argv[4] === 'unflushed'
const cluster = await startBenchCluster()
await cluster.createDatabase('cold')
if (unflushed) await cluster.admin.query('alter database cold set synchronous_commit = off')
const url = cluster.url('cold')
const probe = await openProbe(cluster.probeUrl('cold'))
await outboxEngineSystem('cold', url, probe).prepare()
const MAILBOX = 'outbox@example.com'
const res: Record<string, number[]> = {}
const add = (k: string, v: number) => {
  res[k] = [...(res[k] ?? []), v]
}
// Per variant, pair by pair: the first row's claim → start (for the paired differences).
const firstPickup: Record<string, number[]> = {}
const row = async () =>
  (
    await probe.query<{ id: string }>(
      `insert into mailer.email_outbox (message) values (${OUTBOX_MESSAGE}) returning id`,
    )
  )[0]!.id
const timed = async <T>(key: string, f: () => Promise<T>): Promise<T> => {
  const t = performance.now()
  const r = await f()
  add(key, performance.now() - t)
  return r
}
const claimParams = { workerId: 'w', leaseSeconds: 60, defaultMaxAttempts: 8 }

async function one(v: string) {
  const pool = new pg.Pool({
    connectionString: url,
    application_name: 'outbox-mailer:listener',
    max: 1,
    idleTimeoutMillis: 0,
    Client: preparingClient(() => {}),
  })
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  const client = await pool.connect()
  const session = { query: (t: string, vs?: unknown[]) => client.query(t, vs) }
  client.release()
  await sql`listen mailer_outbox`.execute(db)
  await claimBatch(db, { ...claimParams, limit: 10 })
  const t = performance.now()
  if (v === 'primer')
    await pickupPrimer({ slotTake: true, lastCheck: 'with-pause', guardedClaim: false })(session)
  else await primeNotifiedClaim(session)
  const tMore = performance.now()
  const none = { id: '0', token: crypto.randomUUID() }
  if (v === 'start' || v === 'all') await startSends(db, [{ ...none, mailbox: MAILBOX }])
  if (v === 'slots' || v === 'all') await takeSlots(db, { want: 0, max: 10, holder: 'h', ttlMs: 1 })
  if (v === 'sent' || v === 'all')
    await markSent(db, [{ ...none, settlement: { kind: 'sent' }, startedAt: new Date() }], 'w')
  if (v !== 'claim' && v !== 'primer')
    add(`${v}: the primes beyond the claim's`, performance.now() - tMore)
  add(`${v}: the primes`, performance.now() - t)
  for (const which of ['1st', '2nd']) {
    await Bun.sleep(200)
    const id = await row()
    const k = (s: string) => `${v}: ${which} ${s}`
    const t0 = performance.now()
    const { leases } = await timed(k('a claim'), () =>
      claimBatch(db, { ...claimParams, limit: 10, notifiedId: id }),
    )
    const slots = await timed(k('b take slot'), () =>
      takeSlots(db, { want: 1, max: 10, holder: 'h', ttlMs: 60_000 }),
    )
    const lease = leases[0]!
    await timed(k('c start'), () =>
      startSends(db, [{ id: lease.id, token: lease.token, mailbox: MAILBOX }]),
    )
    add(k('d claim → start'), performance.now() - t0)
    if (which === '1st') firstPickup[v] = [...(firstPickup[v] ?? []), performance.now() - t0]
    await timed(k('e mark sent'), () =>
      markSent(
        db,
        [{ id: lease.id, token: lease.token, settlement: { kind: 'sent' }, startedAt: new Date() }],
        'w',
      ),
    )
    await timed(k('f free slot'), () => freeSlots(db, slots))
  }
  await db.destroy()
  await probe.query(`delete from mailer.email_attempts`)
  await probe.query(`delete from mailer.email_outbox`)
}
try {
  for (let i = 0; i < n; i++)
    for (const v of variants.map((_, j) => variants[(i + j) % variants.length]!)) await one(v)
  for (const [k, v] of Object.entries(res).sort())
    console.log(k.padEnd(34), median(v).toFixed(3), 'ms, n =', v.length)
  const base = firstPickup[variants[0]!]!
  for (const v of variants.slice(1)) {
    const d = firstPickup[v]!.map((x, i) => x - base[i]!)
    console.log(
      `${v} − ${variants[0]}: 1st claim → start, median paired`,
      median(d).toFixed(3),
      'ms, lower in',
      d.filter((x) => x < 0).length,
      'of',
      d.length,
    )
  }
} finally {
  await probe.close()
  await cluster.stop()
}
