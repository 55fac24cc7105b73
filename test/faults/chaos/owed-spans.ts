// The owed probes as the pacing log records them: the spans in which a mailbox's probe stood owed, from the write that owed it to the one that cleared it.
import type { PacingChange } from './pacing-log.ts'

/** From the write that owed `mailbox`'s probe to the write that cleared it (Date.now() scale). */
export interface OwedSpan {
  mailbox: string
  /** The owing write (oweProbe), after the pause it follows committed. */
  from: number
  /** The clearing write (the probe's answer, a stale probe's reclaim); Infinity: still owed. */
  to: number
  /** Every row named as the probe meanwhile. */
  probeIds: Set<string>
}

/** Per mailbox, in the order written (writes to one row are serialized by its lock). */
export function owedSpans(changes: readonly PacingChange[]): OwedSpan[] {
  const spans: OwedSpan[] = []
  const open = new Map<string, OwedSpan>()
  for (const c of changes) {
    const span = open.get(c.mailbox)
    if (span && !c.probeOwed) {
      span.to = c.at
      spans.push(span)
      open.delete(c.mailbox)
    } else if (c.probeOwed) {
      const s = span ?? { mailbox: c.mailbox, from: c.at, to: Infinity, probeIds: new Set() }
      if (c.probeId !== null) s.probeIds.add(c.probeId)
      open.set(c.mailbox, s)
    }
  }
  return [...spans, ...open.values()].sort((a, b) => a.from - b.from)
}
