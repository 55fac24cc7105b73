// The pause mix's invariants: while a mailbox's probe is owed its requests go one at a time, one message each; no due row held after the calm; no probe owed for a mailbox nobody sends from.
import type { GraphRequestRecord } from '../../support/fake-graph.ts'
import type { Database, Graph } from '../harness.ts'
import type { ChaosMailers } from './mailers.ts'
import { judgeOwedSpan } from './owed-span-judge.ts'
import { type OwedSpan, owedSpans } from './owed-spans.ts'
import { type Claim, readPacingLog, type SendStart } from './pacing-log.ts'
import type { ChaosRecord } from './record.ts'

/**
 * The promise, tested on the exact record (pacing-log.ts) and the Graph fake's request log: while
 * a mailbox's probe is owed (from the write that owed it to the one its answer made), no request
 * into that mailbox, a sendMail or a mailbox lookup, starts before the previous one's answer, each
 * is one outbox row's, and a lookup is the probe's own (owed-span-judge.ts). Exempt, and counted:
 * a sendMail whose last check started before the owing write (inFlightSends), a lookup whose row
 * was claimed before it (inFlightLookups); neither could see the pause (nothing fences a request
 * already past its gate). owedLookups: the lookups judged.
 */
export async function checkOwedProbes(
  db: Database,
  graph: Graph,
  mailers: ChaosMailers,
  record: ChaosRecord,
): Promise<Record<string, number>> {
  const { changes, starts, claims } = await readPacingLog(db)
  const spans = owedSpans(changes)
  const checksOf = Map.groupBy(starts, (s: SendStart) => s.outboxId)
  const lastCheck = (q: GraphRequestRecord) =>
    (q.outboxId === null ? [] : (checksOf.get(q.outboxId) ?? []))
      .filter((s) => s.checkedAt <= q.at + 1)
      .at(-1)?.checkedAt
  const claimsOf = Map.groupBy(claims, (c: Claim) => c.outboxId)
  const lastClaim = (q: GraphRequestRecord) =>
    (q.outboxId === null ? [] : (claimsOf.get(q.outboxId) ?? []))
      .filter((c) => c.claimedAt <= q.at + 1)
      .at(-1)?.claimedAt
  const worker = await requestWorkers(db, mailers)
  const figures = {
    owedSpans: spans.length,
    owedMs: 0,
    owedSends: 0,
    inFlightSends: 0,
    owedLookups: 0,
    inFlightLookups: 0,
  }
  for (const span of spans) {
    const end = Number.isFinite(span.to) ? span.to : Date.now()
    figures.owedMs += Math.round(end - span.from)
    const j = judgeOwedSpan(span, graph.fake.requests, lastCheck, lastClaim)
    figures.owedLookups += j.lookups.length
    figures.inFlightLookups += j.inFlightLookups
    figures.inFlightSends += j.inFlight
    figures.owedSends += j.sends.length
    const at = (t: number | null) => (t === null ? 'never' : `+${Math.round(t - span.from)} ms`)
    const by = (q: GraphRequestRecord) =>
      `by ${worker(q)}${lastCheck(q) === undefined ? ', no last check recorded' : ''}`
    const breaches = j.breaches.map(({ q, before, notProbe }) => {
      for (const r of [q, before]) if (r?.outboxId) record.offending.add(r.outboxId)
      if (notProbe)
        return `a lookup for ${q.outboxId}, not the probe, at ${at(q.at)}, its row claimed at ${at(lastClaim(q) ?? null)} (${by(q)})`
      return before === undefined
        ? `a request at ${at(q.at)} carrying no outbox message (${by(q)})`
        : `${q.outboxId} at ${at(q.at)} before ${before.outboxId}'s answer (sent ${at(before.at)}, answered ${at(before.answeredAt)}) (${by(q)}; ${by(before)})`
    })
    noteSpan(record, span, end, j.sends.length)
    if (breaches.length > 0)
      record.problems.push(
        `${span.mailbox}: ${breaches.length} requests broke the owed probe's one-at-a-time (owed ${new Date(span.from).toISOString()} for ${Math.round(end - span.from)} ms, probes ${[...span.probeIds].join(',') || 'none'}): ${breaches.join('; ')}`,
      )
  }
  record.timeline.sort((a, b) => a.at - b.at)
  return figures
}

/** The timeline learns of each span, as the evidence explains a failure from it. */
function noteSpan(record: ChaosRecord, span: OwedSpan, end: number, sends: number) {
  const ids = [...span.probeIds]
  record.timeline.push({ at: span.from, what: `probe owed for ${span.mailbox}` })
  record.timeline.push({
    at: end,
    what: `probe owed for ${span.mailbox} no more (${sends} sends meanwhile, probes ${ids.join(',')})`,
    ids,
  })
}

/**
 * Names the worker of a request and its release: the row's attempt started last before it came
 * (email_attempts.started_at, the worker's clock at its send).
 */
async function requestWorkers(db: Database, mailers: ChaosMailers) {
  const starts = await db.q<{ outbox_id: string; worker_id: string; at: number }>(
    `select outbox_id::text, worker_id, extract(epoch from started_at) * 1000 as at
       from mailer.email_attempts where started_at is not null and worker_id is not null
      order by started_at`,
  )
  const byRow = Map.groupBy(starts, (a) => a.outbox_id)
  return (q: GraphRequestRecord) => {
    const w =
      q.outboxId === null
        ? undefined
        : (byRow.get(q.outboxId) ?? []).filter((a) => Number(a.at) <= q.at + 50).at(-1)?.worker_id
    return w === undefined ? '?' : `${w} ${mailers.releaseOf.get(Number(w.split(':')[1])) ?? ''}`
  }
}

/** Rows pending and due for longer than `boundMs` (the calm had that long to send them). */
export async function checkHeldRows(db: Database, record: ChaosRecord, boundMs: number) {
  const held = await db.q<{ id: string; late_ms: number; code: string | null; key: string | null }>(
    `select id::text, (extract(epoch from now() - send_at) * 1000)::int as late_ms,
            last_error_code as code, sender_key as key
       from mailer.email_outbox
      where status = 'pending' and send_at < now() - make_interval(secs => $1::float8 / 1000)
      order by id limit 20`,
    [boundMs],
  )
  for (const h of held) record.offending.add(h.id)
  if (held.length > 0)
    record.problems.push(
      `rows pending and due past ${boundMs} ms into the calm: ${held.map((h) => `${h.id} (due ${h.late_ms} ms ago, ${h.code ?? '-'}, key ${h.key ?? 'none'})`).join('; ')}`,
    )
}

/** The probes owed for a mailbox no running worker sends from (their reclaims clear them). */
export async function staleOwedProbes(db: Database, liveMailFroms: readonly string[]) {
  return db.q<{ mailbox: string; probe_id: string | null }>(
    `select mailbox, probe_id::text from mailer.mailbox_pacing
      where probe_owed and mailbox <> all($1::text[]) order by mailbox`,
    [liveMailFroms],
  )
}
