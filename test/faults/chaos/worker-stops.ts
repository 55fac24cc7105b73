// A reclaim's history entry of a worker that stopped (lease_expired): what it was doing, by the entry's kind (sql/0189), or, an older release's entry (no kind: CHAOS_OLDER_BINARY's workers), by its words.
import type { HistoryKind } from '../../../src/outbox/history-kind.ts'
import type { AttemptEntry } from './outcome.ts'

/** `kinds` when the entry carries a kind, else `words` (those releases' wording) against its error. */
const stopped = (h: AttemptEntry, kinds: readonly HistoryKind[], words: RegExp) =>
  h.outcome === 'lease_expired' &&
  (h.kind != null ? kinds.includes(h.kind) : words.test(h.error ?? ''))

/** Its worker stopped during the send: the send may have reached Graph. */
export const stoppedDuringSend = (h: AttemptEntry) =>
  stopped(h, ['stopped_during_send'], /during the send/)

/**
 * Its worker stopped during the send, or, the row keeping an earlier send's mark, while it looked
 * that send up or before it sent the row again (no send of its own): the attempt it numbers ended
 * there, and what follows is numbered as it (lookup-stop-words.test.ts pins it). Not a stop before
 * a first send, which a claim of the row counted anew.
 */
export const stoppedEndingAttempt = (h: AttemptEntry) =>
  stopped(
    h,
    ['stopped_during_send', 'stopped_looking_up', 'stopped_before_resend'],
    /during the send|^the worker looking up its interrupted send stopped|^the worker holding the lease stopped before sending again/,
  )
