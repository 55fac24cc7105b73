// The pause mix's invariants: one request into a mailbox while its probe is owed, no due row held after the calm, no probe owed for a mailbox nobody sends from.
import type { Database, Graph } from '../harness.ts'
import type { ChaosMailers } from './mailers.ts'
import type { OwedSpan } from './probe-watch.ts'
import type { ChaosRecord } from './record.ts'
import { MAIL_FROM_OF } from './worker-configs.ts'

// A send whose last check passed just before the pause was written reaches Graph after it: the
// requests arriving within this much of a span's first read are not counted against it.
const IN_FLIGHT_MS = 1_000

/**
 * While a mailbox's probe is owed (the pause standing, then its probe out), Graph gets no sendMail
 * for it but the probe's. Allowed (not counted): the probe rows a read saw; sends already past their
 * last check (IN_FLIGHT_MS). A row naming the mailbox's address sent by a worker whose MAIL_FROM is
 * another (a rolling deploy that changed MAIL_FROM) is no exception since the gate reads the owed
 * probe (pg-send-gate.ts): counted apart too (otherReleaseSends), to say which case a failure is.
 */
export async function checkOwedProbes(
  db: Database,
  graph: Graph,
  spans: readonly OwedSpan[],
  mailers: ChaosMailers,
  record: ChaosRecord,
): Promise<{ owedSpans: number; otherReleaseSends: number }> {
  const rows = await db.q<{ id: string; sender_key: string | null }>(
    'select id::text, sender_key from mailer.email_outbox',
  )
  // Each attempt that made a request: the request it made is the last one started before it came.
  const starts = await db.q<{ outbox_id: string; worker_id: string; at: number }>(
    `select outbox_id::text, worker_id, extract(epoch from started_at) * 1000 as at
       from mailer.email_attempts where started_at is not null and worker_id is not null
      order by started_at`,
  )
  const senderOf = (id: string, at: number) =>
    starts.filter((a) => a.outbox_id === id && Number(a.at) <= at + 50).at(-1)?.worker_id
  const rowOf = new Map(rows.map((r) => [r.id, r]))
  const releaseOfWorker = (w: string) => mailers.releaseOf.get(Number(w.split(':')[1]))
  let otherReleaseSends = 0
  for (const span of spans) {
    const seen = graph.fake.requests.filter(
      (q) =>
        q.kind === 'sendMail' &&
        q.mailbox === span.mailbox &&
        q.at > span.from + IN_FLIGHT_MS &&
        q.at < span.to &&
        !(q.outboxId !== null && span.probeIds.has(q.outboxId)),
    )
    const extra = new Set<string>()
    for (const q of seen) {
      const row = q.outboxId === null ? undefined : rowOf.get(q.outboxId)
      const worker = q.outboxId === null ? undefined : senderOf(q.outboxId, q.at)
      const rel = worker === undefined ? undefined : releaseOfWorker(worker)
      const byOthers =
        row?.sender_key === span.mailbox && rel !== undefined && MAIL_FROM_OF[rel] !== span.mailbox
      if (byOthers) otherReleaseSends++
      extra.add(
        `${q.outboxId} (key ${row?.sender_key ?? 'none'}, at +${q.at - span.from} ms, by ${worker ?? '?'} ${rel ?? ''})`,
      )
      if (q.outboxId) record.offending.add(q.outboxId)
    }
    if (extra.size > 0) {
      record.problems.push(
        `${span.mailbox}: ${extra.size} rows sent while its probe was owed (${new Date(span.from).toISOString()} for ${span.to - span.from} ms, probes ${[...span.probeIds].join(',') || 'none'}): ${[...extra].join('; ')}`,
      )
    }
  }
  return { owedSpans: spans.length, otherReleaseSends }
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
