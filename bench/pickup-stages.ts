// A row's pickup stage by stage from its process's pg trace: the notification's arrival, the claim called and answered, the handler's start.
import type { PgTraceEvent } from './systems/pg-trace.ts'

export type PickupStage = 'sent' | 'notified' | 'claim called' | 'claim answered' | 'started'

/** How a system's pickup shows in its trace: the channel it listens on, its claim's statement label. */
export interface PickupMarks {
  channel: string
  claim: RegExp
}

/**
 * Each stage in ms after the row's acknowledged commit (times in one clock: the trace's, as a
 * hosted system's clientTrace gives it). The notification can come before the acknowledgement, so
 * it is looked for from the insert's sending on; the claim is the first called after it, its
 * answer the first on the same client. At a steady rate this attributes a row to the claim its
 * notification woke, which may have taken rows of others too.
 */
export function pickupStages(
  marks: PickupMarks,
  trace: readonly PgTraceEvent[],
  row: { sentAt: number; committedAt: number; startedAt?: number },
): { stages: Partial<Record<PickupStage, number>>; claim?: string } {
  const c = row.committedAt
  const stages: Partial<Record<PickupStage, number>> = { sent: row.sentAt - c }
  if (row.startedAt !== undefined) stages.started = row.startedAt - c
  const notify = trace.find(
    (e) => e.kind === 'notify' && e.what === marks.channel && e.at >= row.sentAt,
  )
  if (!notify) return { stages }
  stages.notified = notify.at - c
  const call = trace.find((e) => e.kind === 'call' && marks.claim.test(e.what) && e.at >= notify.at)
  if (!call) return { stages }
  stages['claim called'] = call.at - c
  const answer = trace.find(
    (e) =>
      e.kind === 'answer' && e.client === call.client && e.what === call.what && e.at >= call.at,
  )
  if (answer) stages['claim answered'] = answer.at - c
  return { stages, claim: call.what }
}
