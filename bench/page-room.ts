// `bun run bench/page-room.ts [reps] [rows] [fillfactors] [worker ids]`: whether a drain's updates stay on their rows' pages, by worker id length, with and without an older snapshot open.
//
// A claim writes a longer version of each row on its page and leaves the pending one dead; the
// settlement writes a third, which fits only once pruning has freed the dead one, and pruning can
// free it only when no snapshot older than the claim's commit is open (an application's read; the
// benchmark's progress count; the engine's own next claim). A settlement that does not fit moves to
// another page: a lock record and the whole row logged, and the table extended (round 35). The
// claimed version is longer by the lease: its token, expiry, send start and the worker's id
// (lease_owner: since round 37 a worker's 3-character lease key, src/outbox/lease-key.ts; before it
// the id, `host:pid:6 hex`), so with small rows a long owner leaves the claim itself no room.
// A worker id written `<claim>/<history>` claims under the first and settles (the history's
// worker_id) under the second: `/<id>` (an empty lease_owner) shows what a claimed version without
// the owner would cost (round 36: 725 B against 777 with a 29-character id in both).
// This drains `rows` rows on one connection, 500-row claims each settled at once (the engine's own
// calls, bench/engine-batch.ts) under each worker id, alone and beside a reader that counts the unsent rows with a
// sequential scan every 20 ms, on one database per fillfactor (the migrated table's, then each
// given), and reports WAL per row (insert commit to last settlement), updates that went to another
// page (pg_stat_user_tables.n_tup_newpage_upd) and the table's pages after the drain.
import { migrate } from '../src/db/migrate.ts'
import { openDb } from '../src/db/open.ts'
import { silentLogger } from '../src/log.ts'
import { startBenchCluster } from './cluster.ts'
import { claimStarted, settleAllSent } from './engine-batch.ts'
import { lsnBytes } from './server-stats.ts'
import { outboxQueue } from './systems/outbox-engine.ts'
import { openProbe, type Probe } from './systems/probe.ts'

const reps = Number(process.argv[2] ?? 2)
const rows = Number(process.argv[3] ?? 20_000)
const fillfactors = (process.argv[4] ?? '45,30').split(',').filter((f) => f !== '')
const workerIds = (
  process.argv[5] ?? 'w,bench-12345,e286de4f711986:12345:1a2b3c,e286de4f711986:12345:1a2b3c4d'
).split(',')
const READER_EVERY_MS = 20

const newPageUpdates = async (probe: Probe) => {
  // The counters reach the view when a backend flushes them: the probe's own, forced.
  await probe.query('select pg_stat_force_next_flush()')
  await Bun.sleep(1_100)
  const r = await probe.query<{ n: string }>(
    `select n_tup_newpage_upd::text as n from pg_stat_user_tables where relid = 'mailer.email_outbox'::regclass`,
  )
  return Number(r[0]!.n)
}

const cluster = await startBenchCluster()
const results: Record<string, string | number>[] = []
try {
  for (const [i, ff] of ['as migrated', ...fillfactors].entries()) {
    const name = `page_room_${i}`
    await cluster.createDatabase(name)
    await migrate({ url: cluster.url(name), log: silentLogger })
    const probe = await openProbe(cluster.probeUrl(name))
    if (i > 0) await probe.query(`alter table mailer.email_outbox set (fillfactor = ${Number(ff)})`)
    const db = openDb({ name, url: cluster.url(name), log: silentLogger, maxConnections: 1 })
    const queue = outboxQueue(probe)
    try {
      for (let rep = 0; rep < reps; rep++) {
        for (const workerId of workerIds)
          for (const withReader of [false, true]) {
            await queue.reset()
            const reader = withReader ? await openProbe(cluster.probeUrl(name)) : null
            let reading = true
            const readerLoop = (async () => {
              while (reader && reading) {
                await reader.query(
                  `select count(*) from mailer.email_outbox where status <> 'sent'`,
                )
                await Bun.sleep(READER_EVERY_MS)
              }
            })()
            const moved0 = await newPageUpdates(probe)
            const from = await queue.insertBulk(rows)
            for (let done = 0; done < rows; ) {
              const [claimId, historyId = claimId] = workerId.split('/') as [string, string?]
              const leases = await claimStarted(db.statements.db, 500, claimId)
              if (leases.length === 0) throw new Error(`${done} of ${rows} rows claimed`)
              await settleAllSent(db.statements.db, leases, historyId)
              done += leases.length
            }
            const to = (
              await probe.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn')
            )[0]!.lsn
            reading = false
            await readerLoop
            await reader?.close()
            const moved = (await newPageUpdates(probe)) - moved0
            const pages = (
              await probe.query<{ p: number }>(
                `select (pg_relation_size('mailer.email_outbox') / 8192)::int as p`,
              )
            )[0]!.p
            results.push({
              fillfactor: ff,
              rep: rep + 1,
              'worker id': workerId.includes('/')
                ? workerId
                    .split('/')
                    .map((w) => w.length)
                    .join('/')
                : workerId.length,
              reader: withReader ? 'yes' : 'no',
              'WAL B/row': Math.round(Number(lsnBytes(to) - lsnBytes(from)) / rows),
              'updates to another page': moved,
              pages,
            })
            console.error(JSON.stringify(results.at(-1)))
          }
      }
    } finally {
      await db.close()
      await probe.close()
    }
  }
} finally {
  await cluster.stop()
}
console.log(`${rows} rows per drain, 500-row claims each settled at once, ${reps} reps`)
console.table(results)
