// The status report as text for a terminal: one table row per database, then each database's reasons and failures, then the process warnings.
import { pastExpiryPendingMeaning } from '../outbox/past-expiry-pending.ts'
import { credentialRefusalWords } from './credential-refusal-words.ts'
import type { DatabaseStatus, StatusReport } from './status-shape.ts'

const COLUMNS: readonly [string, (d: DatabaseStatus) => string][] = [
  ['DATABASE', (d) => d.name],
  ['HEALTH', (d) => d.health],
  [
    'SCHEMA',
    (d) => (d.schema ? `${d.schema.database ?? '-'}/${d.schema.binary} ${d.schema.verdict}` : '-'),
  ],
  ['PENDING', (d) => count(d.counts?.pending)],
  ['OLDEST DUE', (d) => (d.counts ? age(d.oldestDuePendingSeconds) : '-')],
  ['SENDING', (d) => count(d.claims?.rows)],
  ['HOLDERS', (d) => count(d.claims?.workers)],
  ['WORKERS', (d) => count(d.workers?.live)],
  ['LISTENER', (d) => (d.listener ? (d.listener.sessions > 0 ? 'up' : 'none') : '-')],
  ['PAUSED', (d) => count(d.pausedMailboxes?.count)],
  [
    'FAILED 24H',
    (d) => `${count(d.failedLast24h?.total)}${d.failedLast24h?.complete === false ? '+' : ''}`,
  ],
  ['SENT', (d) => count(d.counts?.sent)],
  ['FAILED', (d) => count(d.counts?.failed)],
  ['CANCELLED', (d) => count(d.counts?.cancelled)],
]

function count(n: number | undefined): string {
  return n === undefined ? '-' : String(n)
}

function age(seconds: number | null): string {
  if (seconds === null) return 'none'
  if (seconds < 60) return `${seconds.toFixed(1)}s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${Math.floor(seconds % 60)}s`
  return `${Math.floor(seconds / 3600)}h${Math.floor((seconds % 3600) / 60)}m`
}

export function renderStatusTable(r: StatusReport): string {
  const cells = [COLUMNS.map(([h]) => h), ...r.databases.map((d) => COLUMNS.map(([, f]) => f(d)))]
  const widths = COLUMNS.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)))
  const lines = cells.map((row) =>
    row
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  )
  for (const d of r.databases) {
    for (const reason of d.reasons) lines.push(`${d.name}: ${reason}`)
    const f = d.failedLast24h
    if (f && f.total > 0) {
      const shown = f.byCode.reduce((n, c) => n + c.rows, 0)
      const codes = f.byCode.map((c) => `${c.code ?? '(no code)'} ${c.rows}`).join(', ')
      lines.push(
        `${d.name}: failed in the last 24 h${f.complete ? '' : ' (at least: the newest 10,000 failed rows looked at)'}: ${codes}${shown < f.total ? `, other codes ${f.total - shown}` : ''}`,
      )
    }
    const w = d.pendingLastErrors
    if (w && w.total > 0) {
      const codes = w.byCode.map((c) => `${c.code} ${c.rows}`).join(', ')
      const shown = w.byCode.reduce((n, c) => n + c.rows, 0)
      lines.push(
        `${d.name}: pending rows whose last try met an error, by its code${w.complete ? '' : " (at least: the first 10,000 such rows in the claim's order counted)"}: ${codes}${shown < w.total ? `, other codes ${w.total - shown}` : ''} (the workers' log and /readyz say why; GET /v1/outbox?status=pending&lastErrorCode=CODE lists them)`,
      )
    }
    if (d.pastExpiryPending) {
      lines.push(
        `${d.name}: ${pastExpiryPendingMeaning(`${d.pastExpiryPending} pending row(s)`, 'OLDEST DUE')}`,
      )
    }
    // With rows pending, a reason above says it; with none, nothing waits on it yet.
    const c = d.credentialRefused
    if (c && c.workers > 0 && d.counts?.pending === 0) {
      lines.push(`${d.name}: ${credentialRefusalWords(c)}: no row waits on it yet`)
    }
    const p = d.pausedMailboxes
    if (p && p.count > 0) {
      const longest =
        p.longestSeconds === null
          ? 'with no end (next_at infinity)'
          : `for ${age(p.longestSeconds)} more`
      const refusal = `by Graph refusing it (check MAIL_FROM or the rows' own from, and that the mailbox exists, is licensed and the app may send from it)`
      const throttles = p.count - p.refused
      const cause =
        p.refused === 0
          ? ' by a provider throttle'
          : throttles === 0
            ? ` ${refusal}`
            : `: ${throttles} by a provider throttle, ${p.refused} ${refusal}`
      const sending =
        p.refused > 0 && p.refusedPending !== null
          ? `, ${p.refusedPending} pending row(s) sending from a refused one`
          : ''
      lines.push(
        `${d.name}: ${p.count} mailbox(es) paused${cause}${sending}, the longest ${longest}`,
      )
    }
    const r = d.pacing
    if (r) {
      lines.push(
        `${d.name}: every worker paces by MAILBOX_RATE_PER_MINUTE ${r.ratePerMinute === 0 ? '0 (none)' : r.ratePerMinute}, the newest worker's: noted by ${r.notedBy ?? 'an older binary'} at ${r.notedAt}`,
      )
    }
  }
  for (const w of r.warnings) lines.push(`warning: ${w}`)
  return `${lines.join('\n')}\n`
}
