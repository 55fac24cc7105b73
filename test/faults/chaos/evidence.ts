// A failing chaos run's evidence: each offending row explained in full, and the logs, tables and timeline kept in a directory.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FakeGraph } from '../../support/fake-graph.ts'
import type { Database, Mailer } from '../harness.ts'
import type { TimelineEntry } from './record.ts'

/**
 * A failing run explains itself: for each offending row, its outbox row, its full attempt history,
 * what the Graph fake received and accepted for it, what the harness did to it and every log line
 * naming it; and keeps the workers' logs, the tables and the timeline in `dir`.
 */
export async function leaveEvidence(
  dir: string,
  e: {
    /** The scenario the closing line names. */
    scenario: string
    db: Database
    graph: FakeGraph
    mailers: readonly Mailer[]
    timeline: readonly TimelineEntry[]
    ids: readonly string[]
    /** More records to keep, each written to `<name>.json` (the pause mix's pacing log). */
    extra?: Record<string, unknown>
  },
) {
  const iso = (t: number | null) => (t === null ? '-' : new Date(t).toISOString())
  mkdirSync(dir, { recursive: true })
  const logs = e.mailers.map((m, i) => {
    let text = ''
    // A mailer started again under its name keeps both logs.
    const file = e.mailers.findIndex((o) => o.name === m.name) === i ? m.name : `${m.name}-${i}`
    try {
      text = readFileSync(m.logPath, 'utf8')
      copyFileSync(m.logPath, join(dir, `${file}.log`))
    } catch {}
    return { name: m.name, pid: m.proc.pid, lines: text.split('\n') }
  })
  const outbox = await e.db
    .q(
      `select id::text, status, attempts, max_attempts, priority, send_at, expires_at, created_at,
              sent_at, send_started_at, cancel_requested_at, lease_owner, lease_token::text,
              lease_expires_at, last_error_code, last_error
         from mailer.email_outbox order by id`,
    )
    .catch((err) => [{ error: String(err) }])
  const attempts = await e.db
    .q('select * from mailer.email_attempts order by outbox_id, id')
    .catch((err) => [{ error: String(err) }])
  const slots = await e.db
    .q(
      'select slot, holder, token, expires_at::text, now()::text as read_at from mailer.send_slots order by slot',
    )
    .catch((err) => [{ error: String(err) }])
  const json = (v: unknown) => JSON.stringify(v, null, 1)
  writeFileSync(join(dir, 'send_slots.json'), json(slots))
  writeFileSync(join(dir, 'email_outbox.json'), json(outbox))
  writeFileSync(join(dir, 'email_attempts.json'), json(attempts))
  writeFileSync(
    join(dir, 'graph-accepted.json'),
    json(e.graph.accepted.map(({ body: _body, ...a }) => a)),
  )
  writeFileSync(join(dir, 'graph-requests.json'), json(e.graph.requests))
  for (const [name, v] of Object.entries(e.extra ?? {}))
    writeFileSync(join(dir, `${name}.json`), json(v))
  writeFileSync(
    join(dir, 'timeline.txt'),
    e.timeline.map((t) => `${iso(t.at)} ${t.what}${t.ids ? ` ${t.ids.join(',')}` : ''}`).join('\n'),
  )
  for (const id of e.ids) {
    const out: string[] = [`---- evidence for row ${id}`]
    const row = (outbox as { id?: string }[]).find((r) => r.id === id)
    out.push(`  row: ${JSON.stringify(row)}`)
    for (const a of attempts as { outbox_id?: unknown }[])
      if (String(a.outbox_id) === id) out.push(`  attempt: ${JSON.stringify(a)}`)
    for (const r of e.graph.requests)
      if (r.outboxId === id)
        out.push(
          `  graph ${r.kind} at ${iso(r.at)} answered ${iso(r.answeredAt)} ${r.status ?? '-'} fault=${r.fault ?? '-'}${r.found !== undefined ? ` found=${r.found}` : ''}${r.acceptedRequestId ? ` accepted request-id ${r.acceptedRequestId}` : ''}`,
        )
    for (const a of e.graph.accepted)
      if (a.outboxId === id)
        out.push(`  graph accepted at ${iso(a.acceptedAt)} request-id ${a.requestId} (${a.folder})`)
    for (const t of e.timeline)
      if (t.ids?.includes(id) && t.ids.length <= 30) out.push(`  harness ${iso(t.at)} ${t.what}`)
      else if (t.ids?.includes(id))
        out.push(`  harness ${iso(t.at)} ${t.what} (one of ${t.ids.length})`)
    const quoted = `"${id}"`
    for (const l of logs)
      for (const line of l.lines) if (line.includes(quoted)) out.push(`  log ${l.name}: ${line}`)
    console.log(out.join('\n'))
  }
  console.log(
    `[fault] ${e.scenario}: evidence (logs, tables, send slots, graph requests, timeline) kept in ${dir}`,
  )
}
