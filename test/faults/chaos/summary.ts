// The chaos soak's one report line: the rows by state, what Graph accepted, how late and how often, what the harness did.
import { type Graph, report, seconds } from '../harness.ts'
import { interruptedSends } from '../send-counts.ts'
import type { ChaosOutcome } from './outcome.ts'
import type { ChaosRecord } from './record.ts'
import type { RowFindings } from './row-checks.ts'
import type { Mode } from './settings.ts'

export function reportChaos(o: {
  seed: number
  mode: Mode
  outcome: ChaosOutcome
  findings: RowFindings
  graph: Graph
  figures: ChaosRecord['figures'] & Record<string, number>
  settleMs: number
}) {
  const { rows, historyOf, sendTimes } = o.outcome
  const { fake } = o.graph
  const { lateMs } = o.findings
  const counts: Record<string, number> = {}
  for (const r of rows) counts[r.status] = (counts[r.status] ?? 0) + 1
  report(`10 chaos soak (${o.mode})`, {
    seed: o.seed,
    rows: rows.length,
    ...counts,
    accepted: fake.accepted.length,
    duplicates: o.findings.duplicates,
    ambiguousRows: rows.filter(
      (r) => interruptedSends(historyOf.get(r.id) ?? [], sendTimes.get(r.id)) > 0,
    ).length,
    lateAfterExpiry: Number.isFinite(lateMs.expiry) ? seconds(lateMs.expiry) : '-',
    lateAfterCancel: Number.isFinite(lateMs.cancel) ? seconds(lateMs.cancel) : '-',
    // The Graph fake's own delay: a sendMail's arrival to its acceptance (at most latencyMs, idle).
    fakeLag: seconds(
      Math.max(
        0,
        ...fake.requests.map((q) => {
          const a = fake.accepted.find((x) => x.requestId === q.acceptedRequestId)
          return a ? a.acceptedAt - q.at : 0
        }),
      ),
    ),
    ...o.figures,
    settle: seconds(o.settleMs),
  })
}
