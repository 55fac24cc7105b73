// `bun run bench/index-room.ts [rounds] [rows] [variants]`: the suite's engine drain with the outbox's indexes at other fillfactors, enqueue and drain WAL per row, taking turns.
//
// Each version a claim or a settlement writes is a new entry in email_outbox_pkey (neither update
// is HOT: both change status, which the partial indexes' predicates name), so a leaf filled to the
// default 90 % at enqueue splits, deduplicates and deletes while the drain runs. A lower fillfactor
// leaves that room at enqueue instead: this says whether it cuts WAL or only moves it from the
// drain to the insert (round 47). A variant is `as-migrated` or `+`-joined `<index>=<fillfactor>`,
// the index one of pk (email_outbox_pkey), sending (email_outbox_sending_idx), history
// (email_attempts_pkey); each variant has its own database, the drains (concurrency 10, after one
// warm-up drain each) alternate their order round by round.
import { startBenchCluster } from './cluster.ts'
import { drainRun } from './drain.ts'
import { inImageEnv } from './image-env.ts'
import { median } from './percentiles.ts'
import { outboxEngineSystem } from './systems/outbox-engine.ts'
import { openProbe, type Probe } from './systems/probe.ts'
import type { BenchSystem } from './systems/system.ts'

const INDEXES: Record<string, string> = {
  pk: 'mailer.email_outbox_pkey',
  sending: 'mailer.email_outbox_sending_idx',
  history: 'mailer.email_attempts_pkey',
}

await inImageEnv()
const rounds = Number(process.argv[2] ?? 3)
const rows = Number(process.argv[3] ?? 20_000)
const variants = (process.argv[4] ?? 'as-migrated,pk=70,pk=50').split(',').filter((v) => v !== '')

const settings = (variant: string) =>
  variant === 'as-migrated'
    ? []
    : variant.split('+').map((s) => {
        const [index, fillfactor] = s.split('=')
        const name = INDEXES[index ?? '']
        const ff = Number(fillfactor)
        if (name === undefined || !Number.isInteger(ff) || ff < 10 || ff > 100)
          throw new Error(`variant "${variant}": <${Object.keys(INDEXES).join('|')}>=<10-100>`)
        return `alter index ${name} set (fillfactor = ${ff})`
      })

const cluster = await startBenchCluster()
const runs: { variant: string; sys: BenchSystem; drain: number[]; enqueue: number[] }[] = []
const probes: Probe[] = []
try {
  for (const [i, variant] of variants.entries()) {
    const name = `index_room_${i}`
    const statements = settings(variant)
    await cluster.createDatabase(name)
    const probe = await openProbe(cluster.probeUrl(name))
    probes.push(probe)
    const sys = outboxEngineSystem(name, cluster.url(name), probe)
    await sys.prepare()
    // As the owner (the probe role may not alter the schema's indexes); a drain truncates, so
    // every measured drain's index pages split at the variant's fillfactor.
    const owner = await openProbe(cluster.url(name))
    for (const s of statements) await owner.query(s)
    await owner.close()
    await drainRun(cluster, sys, rows, 10, 60_000)
    runs.push({ variant, sys, drain: [], enqueue: [] })
  }
  for (let round = 0; round < rounds; round++) {
    for (const run of round % 2 === 0 ? runs : [...runs].reverse()) {
      const d = await drainRun(cluster, run.sys, rows, 10, 60_000)
      if (!d.complete) throw new Error(`${run.variant}: the drain did not finish within 60 s`)
      run.drain.push(d.walBytesPerRow)
      run.enqueue.push(d.enqueueWalBytesPerRow)
    }
  }
  const r1 = (x: number) => Math.round(x * 10) / 10
  console.table(
    runs.map((r) => ({
      variant: r.variant,
      'drain WAL B/row': r1(median(r.drain)),
      'drain, each round': r.drain.map(r1).join(' / '),
      'enqueue WAL B/row': r1(median(r.enqueue)),
      'enqueue + drain': r1(median(r.drain.map((d, i) => d + r.enqueue[i]!))),
    })),
  )
  for (const r of runs) await r.sys.dispose?.()
} finally {
  for (const p of probes) await p.close()
  await cluster.stop()
}
