// `HANDOFF_FROM=<another checkout> bun run bench/handoff-pairs.ts [pairs] [gapMs]`: a pickup's hand-off client code, this checkout's against another's, in pairs in one process.
//
// The hand-off (the claim's answer → the send's start) as the engine runs it for one row of
// enqueue_email's shape with an open gate: the claim's JSON text parsed (parseClaim, toLease), its
// lease confirmed, deliverBatch (render, slot, sendOne) up to the sender's call. No database, no
// socket: the code alone, each checkout's own modules (src/outbox of each, imported side by side),
// called in turns A/B, B/A with `gapMs` of sleep before each call, as a pickup at a steady rate
// finds its code cold (0: hot). The sender never answers, so nothing settles. Reported: each
// side's median µs, and the median and quartiles of each pair's difference (other − this), with
// how many pairs this checkout was the faster in. Pickup-turns' hop medians (PICKUP_HOPS=1) carry
// the database's and the other systems' noise; this one only the machine's (round 58).
import { median, percentile } from './percentiles.ts'

const pairs = Number(process.argv[2] ?? 600)
const gapMs = Number(process.argv[3] ?? 10)
const other = process.env.HANDOFF_FROM
if (!other) {
  console.error(
    'usage: HANDOFF_FROM=<another checkout> bun run bench/handoff-pairs.ts [pairs] [gapMs]',
  )
  process.exit(2)
}

type HandOff = (text: string) => number

/** One checkout's hand-off: µs from the claim's text to its sender's call. */
async function handOffOf(src: string): Promise<HandOff> {
  const answer = await import(`${src}/outbox/claim-answer.ts`)
  const deliver = await import(`${src}/outbox/deliver.ts`)
  const { createSlots } = await import(`${src}/outbox/slots.ts`)
  const { openGate } = await import(`${src}/outbox/send-gate.ts`)
  const { createLeaseDeadlines } = await import(`${src}/outbox/lease-deadlines.ts`)
  const { monotonicNow, systemClock: clock } = await import(`${src}/clock.ts`)
  const { silentLogger } = await import(`${src}/log.ts`)
  const deadlines = createLeaseDeadlines(clock, 30_000)
  let sentAt = Number.NaN
  // What an open gate's pickup reads of its deps; no statement runs (the claim marked it started).
  const deps = {
    dbName: 'bench',
    gate: openGate,
    slots: createSlots(1_000_000),
    clock,
    log: silentLogger,
    mailFrom: 'outbox@example.com',
    backoff: { baseMs: 1_000, maxMs: 10_000 },
    lookup: null,
    ambiguousPolicy: 'resend',
    stopping: new AbortController().signal,
    abort: new AbortController().signal,
    done: () => {},
    deadlines,
    sender: {
      name: 'bench',
      send: () => {
        sentAt = performance.now()
        return new Promise(() => {})
      },
    },
  }
  return (text) => {
    sentAt = Number.NaN
    const t0 = performance.now()
    const token = crypto.randomUUID()
    const leases = answer
      .parseClaim(text, (c: unknown[]) => c)
      .map((r: unknown) => answer.toLease(r, token))
    deadlines.confirm(leases, monotonicNow(clock))
    void deliver.deliverBatch(deps, leases)
    if (Number.isNaN(sentAt)) throw new Error(`${src}: the row was not sent`)
    return (sentAt - t0) * 1000
  }
}

// HANDOFF_OTHER_FIRST=1: the other checkout's modules loaded first (an A/A run read 4.6 µs for the
// side loaded first: where each side's code lands counts at this scale).
const otherFirst = process.env.HANDOFF_OTHER_FIRST === '1'
const first = await handOffOf(otherFirst ? `${other}/src` : `${import.meta.dir}/../src`)
const second = await handOffOf(otherFirst ? `${import.meta.dir}/../src` : `${other}/src`)
const sides = otherFirst ? { this: second, other: first } : { this: first, other: second }
// claim_notified's answer for one row as enqueue_email stores it (bench/systems/outbox-engine.ts's message).
const claimText = (i: number) =>
  `[["${1000 + i}","default",1,3,"${i}",{"to":[{"address":"a@example.com"}],"subject":"s","text":"t"},null,null,false,false,false,true]]`
const took = { this: [] as number[], other: [] as number[] }
const diffs: number[] = []
const WARM_UP = 20
for (let i = 0; i < pairs + WARM_UP; i++) {
  const order = i % 2 === 0 ? (['this', 'other'] as const) : (['other', 'this'] as const)
  const us = { this: 0, other: 0 }
  for (const side of order) {
    if (gapMs > 0) await Bun.sleep(gapMs)
    us[side] = sides[side](claimText(i))
  }
  if (i < WARM_UP) continue
  took.this.push(us.this)
  took.other.push(us.other)
  diffs.push(us.other - us.this)
}
const f = (x: number) => x.toFixed(1)
console.log(
  `${pairs} pairs, ${gapMs} ms before each call: this checkout ${f(median(took.this))} µs, ${other} ${f(median(took.other))} µs (medians); ` +
    `other − this per pair: median ${f(median(diffs))} µs (quartiles ${f(percentile(diffs, 25))} / ${f(percentile(diffs, 75))}), ` +
    `this checkout the faster in ${diffs.filter((d) => d > 0).length} of ${pairs}`,
)
