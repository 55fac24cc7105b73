// One owed span judged on the Graph fake's request log: its sendMails and its lookups one at a time, each a row's, lookups only the probe's.
import type { GraphRequestRecord } from '../../support/fake-graph.ts'
import type { OwedSpan } from './owed-spans.ts'

/** A request that broke the span: `before`, the earlier one unanswered as it started; `notProbe`, a lookup no gate let through. */
export interface OwedBreach {
  q: GraphRequestRecord
  before?: GraphRequestRecord
  notProbe?: true
}

/**
 * The promise while a mailbox's probe is owed (from the owing write to the one its answer made):
 * a request into it, a sendMail or a mailbox lookup, starts only after every earlier one's answer
 * and is an outbox row's. A lookup is a provider request under the same gate as a send
 * (gated-send.ts): it reads no message out, but it is the mailbox asked, so a throttled mailbox
 * meets it as it meets a send, and an owed probe lets through only the probe's own (a row the
 * span named as its probe). A lookup for another row is a breach unless that row was claimed
 * before the owing write, so its gate's read may have come before the pause (exempt, counted:
 * inFlightLookups; the gate's read leaves no record, its claim does). A sendMail is exempt
 * (inFlight) when its last check started before the owing write, as it could not see the pause.
 * `lastCheck`/`lastClaim`: the request's row's last check and last claim started before it
 * (undefined: none recorded, judged as after the owing).
 */
export function judgeOwedSpan(
  span: OwedSpan,
  requests: readonly GraphRequestRecord[],
  lastCheck: (q: GraphRequestRecord) => number | undefined,
  lastClaim: (q: GraphRequestRecord) => number | undefined = () => undefined,
) {
  const into = requests.filter(
    (q) => q.mailbox === span.mailbox && q.at > span.from && q.at < span.to,
  )
  const all = into.filter((q) => q.kind === 'sendMail')
  const sends = all.filter((q) => (lastCheck(q) ?? Infinity) >= span.from)
  const allLookups = into.filter((q) => q.kind === 'lookup')
  const isProbe = (q: GraphRequestRecord) => q.outboxId !== null && span.probeIds.has(q.outboxId)
  const lookups = allLookups.filter((q) => isProbe(q) || (lastClaim(q) ?? Infinity) >= span.from)
  const breaches: OwedBreach[] = lookups
    .filter((q) => !isProbe(q))
    .map((q) => ({ q, notProbe: true }))
  // The earlier request answered last (never: null, past every start).
  let last: GraphRequestRecord | undefined
  for (const q of into.filter((r) => sends.includes(r) || lookups.includes(r))) {
    if (q.outboxId === null) breaches.push({ q })
    if (last && (last.answeredAt === null || last.answeredAt > q.at))
      breaches.push({ q, before: last })
    if (
      !last ||
      (last.answeredAt !== null && (q.answeredAt === null || q.answeredAt > last.answeredAt))
    )
      last = q
  }
  return {
    sends,
    lookups,
    inFlight: all.length - sends.length,
    inFlightLookups: allLookups.length - lookups.length,
    breaches,
  }
}
