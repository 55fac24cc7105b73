// `bun run bench/deliver-loop.ts [concurrency] [rounds] [batches] [mode]`: the drainer's own per-row path with an instant sender, client CPU per row, no database.
//
// bench/client-cpu-split.ts measures a whole drain against its statements; on this shared machine a
// drain's figure moves with its rate by half. Here only the JavaScript between a claim's answer and
// its settlement statement runs, on 500-row claims as an open gate takes them (every row started by
// its claim), two claims in flight as the drainer refills at half a claim, `concurrency` send slots.
// Modes: `drainer` (default): deliverBatch (render, slots, the deadline check, the send, the outcome
// recorded) into the settle queue, whose write answers at once; `settled`: the same, the settle
// queue replaced by an answer at once (what the queue's batching costs, by difference); `floor`:
// each row rendered and sent through one async call and one promise, nothing else (what no per-row
// shape can go below); `none`: the claims made up and booked, nothing delivered (this bench's own
// share, to subtract from the others). DELIVER_FROM=<another checkout> runs that checkout's src/: compare two by
// turns, process after process, within one sitting.
import { resolve } from 'node:path'

const [concArg = '10', roundsArg = '5', batchesArg = '200', mode = 'drainer'] =
  process.argv.slice(2)
if (!['drainer', 'settled', 'floor', 'none'].includes(mode)) throw new Error(`unknown mode ${mode}`)
const root = resolve(process.env.DELIVER_FROM ?? `${import.meta.dir}/..`)
const src = (f: string) => import(`${root}/src/${f}`)
const { systemClock } = await src('clock.ts')
const { silentLogger } = await src('log.ts')
const { deliverBatch } = await src('outbox/deliver.ts')
const { renderLease } = await src('outbox/render.ts')
const { createSlots } = await src('outbox/slots.ts')
const { createSettleQueue } = await src('outbox/settle-queue.ts')
const { createLeaseDeadlines } = await src('outbox/lease-deadlines.ts')
const { openGate } = await src('outbox/send-gate.ts')
const { createHeldLeases } = await src('outbox/held-leases.ts')
const { toLease } = await src('outbox/claim-answer.ts')

type Row = { id: string }
const conc = Number(concArg)
const slots = createSlots(conc)
const sentRow = (i: Row) => ({ id: i.id, status: 'sent', outcome: 'sent', code: null })
const settle =
  mode === 'settled'
    ? { push: async (i: Row) => sentRow(i), idle: async () => {}, giveUpBy: () => {} }
    : createSettleQueue({
        write: async (items: Row[]) => items.map(sentRow),
        clock: systemClock,
        log: silentLogger,
        giveUpAfterMs: 30_000,
      })
const deadlines = createLeaseDeadlines(systemClock, 60_000)
const held = createHeldLeases({ gateOpen: true, concurrency: conc })
const sender = { name: 'instant', send: async (_mail: unknown) => ({ kind: 'sent' }) }
const message = { to: [{ address: 'a@example.com' }], subject: 's', text: 't' }
const MAIL_FROM = 'outbox@example.com'
let next = 1
// As a claim's answer reads (claim-answer.ts): [id, tenant, attempt, maxAttempts, correlationId,
// message, template, sourceRow, expired, cancelRequested, ambiguous, started].
const claim = () =>
  Array.from({ length: 500 }, () =>
    toLease(
      [String(next++), 'default', 1, 5, null, message, null, null, false, false, false, true],
      crypto.randomUUID(),
    ),
  )
const deps = {
  dbName: 'bench',
  db: null,
  sender,
  gate: openGate,
  slots,
  settle,
  start: async () => {
    throw new Error('no last check: every row was started by its claim')
  },
  clock: systemClock,
  log: silentLogger,
  mailFrom: MAIL_FROM,
  backoff: { baseMs: 1000, maxMs: 10_000 },
  lookup: null,
  ambiguousPolicy: 'resend',
  deadlines,
  stopping: new AbortController().signal,
  abort: new AbortController().signal,
  handedOver: (l: Row) => held.unsent.delete(l),
  done: (l: Row) => held.release(l),
}
type Leases = ReturnType<typeof claim>
const floor = (leases: Leases) =>
  Promise.all(
    leases.map(async (l) => {
      await sender.send(renderLease(l, new Map(), MAIL_FROM, null))
    }),
  )
const deliver = (leases: Leases): Promise<unknown> =>
  mode === 'none'
    ? Promise.resolve(leases.map((l) => held.release(l)))
    : mode === 'floor'
      ? floor(leases)
      : deliverBatch(deps, leases)
const cpu = () => {
  const u = process.cpuUsage()
  return u.user + u.system
}
async function round(batches: number) {
  const from = cpu()
  let inFlight: Promise<unknown> | null = null
  for (let b = 0; b < batches; b++) {
    const leases = claim()
    deadlines.confirm(leases, performance.now())
    for (const l of leases) {
      held.held.set(l.id, l)
      held.unsent.add(l)
    }
    const run = deliver(leases)
    if (inFlight) await inFlight
    inFlight = run
  }
  await inFlight
  await settle.idle()
  return (cpu() - from) / (batches * 500)
}
await round(100)
const perRow: number[] = []
for (let i = 0; i < Number(roundsArg); i++) perRow.push(await round(Number(batchesArg)))
const sorted = [...perRow].sort((a, b) => a - b)
console.log(
  `${root} ${mode} c${conc}: µs/row median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)} (${perRow.map((x) => x.toFixed(2)).join(' / ')})`,
)
