// `bun run bench/cold-claim.ts [pairs]`: the first notified claim's round trip on a new session, cold or primed.
//
// A session as the listener opens it (LISTEN, then the sweep's claim_batch), then, by turns: nothing
// more (cold), mailer.claim_notified for id 0 (prime0, as the listener ran it in rounds 31-32) or for
// id NULL (primeNull, as it runs it since round 33: 0 can be a row written by hand), or
// a claim of a real row inside a transaction rolled back (primeRolledBack: every path of the claim
// run once, its update and commit aside). 200 ms later a row is committed and claimed alone on the
// session; 200 ms after that, a second one (warm). Round trips from this process, medians.
import pg from 'pg'
import { startBenchCluster } from './cluster.ts'
import { median } from './percentiles.ts'
import { OUTBOX_MESSAGE, outboxEngineSystem } from './systems/outbox-engine.ts'
import { openProbe } from './systems/probe.ts'

const n = Number(process.argv[2] ?? 20)
const cluster = await startBenchCluster()
await cluster.createDatabase('cold')
const url = cluster.url('cold')
const probe = await openProbe(cluster.probeUrl('cold'))
await outboxEngineSystem('cold', url, probe).prepare()
const NOTIFIED = `/* prepared outbox_claim_notified */ select mailer.claim_notified($1::bigint, $2::text, $3::uuid, $4::float8, $5::boolean, $6::int) as claim`
const BATCH = `/* prepared outbox_claim_batch */ select mailer.claim_batch($1::int, $2::text, $3::uuid, $4::float8, true, $5::int) as claim`
type V = 'cold' | 'prime0' | 'primeNull' | 'primeRolledBack'
const res: Record<string, number[]> = {}
const add = (k: string, v: number) => {
  res[k] = [...(res[k] ?? []), v]
}
const row = async () =>
  (
    await probe.query<{ id: string }>(
      `insert into mailer.email_outbox (message) values (${OUTBOX_MESSAGE}) returning id`,
    )
  )[0]!.id
const claim = (c: pg.Client, id: string | null, mark = true) =>
  c.query({ name: 'n', text: NOTIFIED, values: [id, 'w', crypto.randomUUID(), 60, mark, 8] })
async function one(v: V) {
  const c = new pg.Client({ connectionString: url, application_name: 'outbox-mailer:listener' })
  await c.connect()
  await c.query('listen mailer_outbox')
  await c.query({ name: 'b', text: BATCH, values: [10, 'w', crypto.randomUUID(), 60, 8] })
  const t = performance.now()
  if (v === 'prime0') await claim(c, '0', false)
  if (v === 'primeNull') await claim(c, null, false)
  if (v === 'primeRolledBack') {
    await c.query('begin')
    const r = await c.query<{ id: string }>(
      `insert into mailer.email_outbox (message) values (${OUTBOX_MESSAGE}) returning id`,
    )
    await claim(c, r.rows[0]!.id, true)
    await c.query('rollback')
  }
  if (v !== 'cold') add(`${v}: the prime itself`, performance.now() - t)
  await Bun.sleep(200)
  const id1 = await row()
  const t0 = performance.now()
  await claim(c, id1)
  add(`${v}: first notified claim`, performance.now() - t0)
  await Bun.sleep(200)
  const id2 = await row()
  const t1 = performance.now()
  await claim(c, id2)
  add(`${v}: second, 200 ms later`, performance.now() - t1)
  await c.end()
  await probe.query(`delete from mailer.email_outbox`)
}
try {
  const vs: V[] = ['cold', 'prime0', 'primeNull', 'primeRolledBack']
  for (let i = 0; i < n; i++)
    for (const v of vs.map((_, j) => vs[(i + j) % vs.length]!)) await one(v)
  for (const [k, v] of Object.entries(res).sort())
    console.log(
      k.padEnd(40),
      median(v).toFixed(3),
      'ms, n =',
      v.length,
      '|',
      v.map((x) => x.toFixed(2)).join(' '),
    )
} finally {
  await probe.close()
  await cluster.stop()
}
