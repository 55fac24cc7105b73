// The most sendMail requests the Graph fake held at once (GRAPH_MAX_CONCURRENCY's reach), and the harness's actions before each excess.
import type { GraphRequestRecord } from '../../support/fake-graph.ts'
import type { TimelineEntry } from './record.ts'

/**
 * How far back an excess's explanation is looked for: an outage of a few seconds, the 5 s a holder's
 * lock must stay gone, and a slot's time to live (GRAPH_REQUEST_TIMEOUT_SECONDS + 15 s) its renewals
 * may fail for.
 */
export const SEND_PEAK_WINDOW_MS = 30_000

export interface SendPeak {
  /** The most sendMail requests open at the fake at one moment. */
  peak: number
  /** Each moment more than the limit were open, with the harness's actions in the window before it. */
  excesses: { at: number; open: number; before: string[] }[]
}

/**
 * Sweeps the fake's sendMail spans, arrival to answer or to the client's close, whichever is first (a
 * cut request's slot is free at once, though the fake may answer it later); one never answered stays
 * open until `end`.
 * Lookups are left out: GRAPH_MAX_CONCURRENCY gates sends only. `windowMs`: how far back an
 * excess's explanation (a kill, an outage, a terminated session) is looked for.
 */
export function sendPeak(
  requests: readonly GraphRequestRecord[],
  limit: number,
  timeline: readonly TimelineEntry[],
  end: number,
  windowMs: number,
): SendPeak {
  // An answer at the same moment as an arrival ends first: the slot was free by then.
  const edges: [number, number][] = []
  for (const r of requests) {
    if (r.kind !== 'sendMail') continue
    edges.push([r.at, 1], [Math.min(r.answeredAt ?? end, r.closedAt ?? end), -1])
  }
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  let open = 0
  let peak = 0
  const excesses: SendPeak['excesses'] = []
  for (const [at, step] of edges) {
    open += step
    peak = Math.max(peak, open)
    if (step > 0 && open > limit) {
      const before = timeline
        .filter((t) => t.at <= at && t.at >= at - windowMs)
        .map((t) => `${new Date(t.at).toISOString()} ${t.what}`)
      excesses.push({ at, open, before })
    }
  }
  return { peak, excesses }
}

/** The harness's notes of a Postgres outage: its start, its server gone, its end. */
const OUTAGE = /^postgres (stop|crash|down|up)\b/

/**
 * An excess is a problem unless the README's slots paragraph allows it: a Postgres outage within
 * its window (a LISTEN session failing to reconnect for over 5 s, a slot expiring while its
 * renewals fail), or a worker of a release before 0129 on the run (it takes a dead-looking
 * holder's slot at once).
 */
export function sendPeakProblems(p: SendPeak, limit: number, olderBinary: boolean): string[] {
  if (olderBinary) return []
  return p.excesses
    .filter((e) => !e.before.some((b) => OUTAGE.test(b.slice(b.indexOf(' ') + 1))))
    .map(
      (e) =>
        `${e.open} sendMail requests open at Graph at ${new Date(e.at).toISOString()}, over GRAPH_MAX_CONCURRENCY ${limit}, no Postgres outage before it; the harness before it:\n  ${e.before.join('\n  ') || '(nothing)'}`,
    )
}
