// `bun run bench/client-cpu-split.ts [concurrency] [rounds] [rows]`: the engine's client CPU per drained row, its statements alone against the whole drainer, and two pieces of it.
//
// In this process, taking turns round by round on one database: (1) the claim and settlement
// statements alone (claimBatch of 500 rows marked started, then markSent of them all, as
// bench/engine-batch.ts runs them: the driver, the claim's answer read, the settlement's
// parameters), and (2) a drain of the in-process engine (bench/systems/outbox-engine.ts: the drainer,
// its slots, deadlines, render, sends and settle queue, the listener, plus this process's progress
// polls). CPU is this process's user + system time (process.cpuUsage) over each, per row. Then, in
// a tight loop over the rows of one real claim: the claim's JSON answer parsed into leases
// (parseClaim, toLease), and a row rendered (renderLease) and its header counted (headerFieldsBytes).
// Per-row costs only: compare the columns within a run, never one run's figure with another's.

import { openDb } from '../src/db/open.ts'
import { silentLogger } from '../src/log.ts'
import type { Lease } from '../src/outbox/claim.ts'
import { type LeaseTuple, parseClaim, toLease } from '../src/outbox/claim-answer.ts'
import { headerFieldsBytes } from '../src/outbox/header-size.ts'
import { renderLease } from '../src/outbox/render.ts'
import { startBenchCluster } from './cluster.ts'
import { drainRun } from './drain.ts'
import { claimStarted, settleAllSent } from './engine-batch.ts'
import { inImageEnv } from './image-env.ts'
import { systemByKey } from './systems/by-key.ts'
import { openProbe } from './systems/probe.ts'

await inImageEnv()
const [concArg = '10', roundsArg = '3', rowsArg = '20000'] = process.argv.slice(2)
const conc = Number(concArg)
const rounds = Number(roundsArg)
const rows = Number(rowsArg)
const key = 'outbox_engine'
const cluster = await startBenchCluster()
await cluster.createDatabase(key)
const probe = await openProbe(cluster.probeUrl(key))
const sys = await systemByKey(key, cluster.url(key), probe)
await sys.prepare()
const handle = openDb({
  name: 'split',
  url: cluster.url(key),
  log: silentLogger,
  maxConnections: 2,
})
const cpuMicros = () => {
  const u = process.cpuUsage()
  return u.user + u.system
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN
let sample: Lease[] = []

async function statementsOnly(): Promise<number> {
  await sys.reset()
  await sys.insertBulk(rows)
  const from = cpuMicros()
  let done = 0
  for (;;) {
    const leases = await claimStarted(handle.statements.db, 500, 'cpu')
    if (leases.length === 0) break
    if (sample.length === 0) sample = leases
    await settleAllSent(handle.statements.db, leases, 'cpu')
    done += leases.length
  }
  return (cpuMicros() - from) / done
}

try {
  // Warm code first, both ways.
  await drainRun(cluster, sys, rows, conc, 60_000)
  await statementsOnly()
  const alone: number[] = []
  const engine: number[] = []
  for (let i = 0; i < rounds; i++) {
    alone.push(await statementsOnly())
    const d = await drainRun(cluster, sys, rows, conc, 60_000)
    engine.push(d.clientCpuMicrosPerRow)
    console.log(
      `round ${i + 1}: statements alone ${alone.at(-1)?.toFixed(1)} µs/row, engine drain ${d.clientCpuMicrosPerRow.toFixed(1)} µs/row (${Math.round(d.rowsPerSecond)} rows/s)`,
    )
  }
  console.log(
    `median: statements alone ${median(alone).toFixed(1)}, engine drain ${median(engine).toFixed(1)} µs/row (c${conc}, ${rows} rows)`,
  )

  // The claim's answer as claim_batch writes it (sql/0019: an array per row), from a real claim's rows.
  const text = JSON.stringify({
    leases: sample.map((l) => [
      l.id,
      l.tenant,
      l.attempt,
      5,
      l.correlationId,
      l.message,
      l.template,
      l.sourceRow,
      l.expired,
      l.cancelRequested,
      l.ambiguous,
      l.started,
    ]),
    nextDueMs: null,
  })
  const mails = sample.map((l) => renderLease(l, new Map(), 'outbox@example.com', null))
  const pieces: Record<string, () => number> = {
    'answer parsed (parseClaim, toLease)': () =>
      parseClaim<{ leases: LeaseTuple[] }>(text, (c) => c.leases)?.leases.map((r) =>
        toLease(r, 't'),
      ).length ?? 0,
    'row rendered (renderLease)': () => {
      for (const l of sample) renderLease(l, new Map(), 'outbox@example.com', null)
      return sample.length
    },
    'its header counted (headerFieldsBytes)': () => {
      for (const m of mails) headerFieldsBytes({ ...m, from: null })
      return mails.length
    },
  }
  const spent = new Map<string, number[]>(Object.keys(pieces).map((name) => [name, []]))
  for (let turn = 0; turn < 6; turn++) {
    for (const [name, run] of Object.entries(pieces)) {
      const from = cpuMicros()
      let n = 0
      for (let i = 0; i < 200; i++) n += run()
      // The first turn warms the code and is not counted.
      if (turn > 0) spent.get(name)?.push((cpuMicros() - from) / n)
    }
  }
  for (const [name, xs] of spent)
    console.log(
      `${name}: ${median(xs).toFixed(2)} µs/row (${xs.map((x) => x.toFixed(2)).join(' / ')})`,
    )
  console.log(`the answer: ${(text.length / sample.length).toFixed(0)} B/row`)
} finally {
  await handle.close()
  await probe.close()
  await cluster.stop()
}
