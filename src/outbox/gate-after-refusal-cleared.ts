// The send gate a worker whose token came after a refusal takes turns through once its registry entry no longer notes the refusal.
import type { SendGate } from './send-gate.ts'

/**
 * While the worker's note clearing its credential's refusal (credential-refusal-note.ts,
 * `clearing`) is to come or under way, a permit, and the pacing turn it takes or reserves, waits
 * for it. Until it commits, another worker refused alone reads this one's entry as refused and
 * gives up the turns reserved (paced-rows-blocked.ts): a turn reserved in that gap was dropped,
 * its row made due and named by the other's refusal, and the next one reserved from the mailbox's
 * turn again, onto a turn already handed out. Reserved after the note's commit, the turn is left
 * by every ask whose statement began after it (its snapshot shows this worker working); one begun
 * before and still running when the reservation commits (the statement's milliseconds, its delete
 * re-reading the row) can still drop it. A wait of one statement, once per token after a refusal;
 * none otherwise (no promise, no await: the send path's statements and hops are unchanged).
 */
export function gateAfterRefusalCleared(
  gate: SendGate,
  clearing: (() => Promise<void> | null) | undefined,
): SendGate {
  if (clearing === undefined) return gate
  return {
    ...gate,
    acquire: (...args) => {
      const note = clearing()
      return note === null ? gate.acquire(...args) : note.then(() => gate.acquire(...args))
    },
  }
}
