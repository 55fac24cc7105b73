// Block naming: the due rows a send block (a refused credential) holds are told why they wait, once per block; the rows sent back for a pacing turn before it are made due and told too, once the refusal is every live worker's.
import type { Logger } from '../log.ts'
import type { DrainerDeps } from './drainer-deps.ts'
import { createDueTimer } from './due-timer.ts'
import { pacedRowsBlocked } from './paced-rows-blocked.ts'
import { createWaitingMarks } from './waiting-marks.ts'

// How long past the last able entry's deadline its timer's ask comes (database time against the
// timer's; an ask a hair early finds it live, and arms again for the rest).
const ENDS_MARGIN_MS = 100

export function createBlockNaming(
  d: DrainerDeps,
  log: Logger,
  /** An ask owed by its timer (the loop's wake); `stopped`: no timer armed once the drainer stops. */
  loop: { wake: () => void; stopped: () => boolean },
) {
  // The due rows a block holds are named by a pass, one bounded statement per block (each block
  // ends in a claim, which the next refusal follows), and rows enqueued since at each wake
  // meanwhile, by id: never all of them on every wake (waiting-marks.ts).
  const waitingMarks = createWaitingMarks(d.db)
  // This block's step of the pass made; reset by each claim.
  let blockNamed = false
  // The turns reserved before a block given up, their rows due and named by it, in this block
  // (paced-rows-blocked.ts), once the refusal is every live worker's. Asked once per block (reset
  // by each claim: a refusal's cooldown, a minute), never per wake: the refusal may reach the others
  // later, and a working worker started after an ask that gave the turns up may have taken rows to
  // turns of its own since, then been killed (its entry reads dead two leases on, no notification):
  // this worker paces none while blocks last (a row is paced only with a token in hand, sender.ts,
  // ready), so nothing else here gives those up before they come due. And once more when the
  // worker's own note of a refusal commits after this block's ask began (askAgain): two workers
  // refused at once each asked before the other's note landed and found the other not refused; the
  // one whose note lands last asks after both have, and acts. And once more when a worker that could
  // send stops cleanly (its notification, worker-stopped-notice.ts): the only working one gone, its
  // turns were kept until the next block; even after the turns were given up, as a working one
  // started since may have taken rows to turns.
  let pacedNamed = false
  let pacedAsked = false
  let asking = false
  let askAgain = false
  d.tokenCame?.(() => {
    pacedNamed = false
  })
  // An ask this block made, or makes now, is owed again; whether one is (the caller wakes the loop).
  const owe = () => {
    if (!pacedNamed && (pacedAsked || asking)) askAgain = true
    return askAgain
  }
  // A worker that could send stopped: as owe, and also once the turns are given up: a working
  // worker started after that ask may have taken rows to turns of its own since (no claim of this
  // worker's paces one while blocked, so nothing here saw them), kept until they came due. One
  // ask per such notification (sent only while this worker's entry notes a refusal).
  const stoppedPeer = () => {
    if (!pacedNamed) return owe()
    pacedNamed = false
    askAgain = true
    return true
  }
  // And once more when the last entry able to send stops reading live (paced-rows-blocked.ts
  // endsInMs: a killed machine's, two of its leases past its last beat), within this block: no
  // statement marks that moment, and the next block's ask came up to a minute after it. Armed only
  // to come before the block ends, so a live peer (its deadline a lease or more away at each beat)
  // costs no ask beyond the block's own, bar a short LEASE_SECONDS; cleared by a claim.
  const endsTimer = createDueTimer({
    clock: d.clock,
    horizonMs: () => d.sendBlockedForMs?.() ?? 0,
    stopped: loop.stopped,
    fire: () => {
      if (owe()) loop.wake()
    },
  })
  async function markWaiting() {
    // Taken at once, so that a loop asked to come back for it comes back once.
    const again = askAgain
    askAgain = false
    const blocked = d.sendBlockedBy?.() ?? null
    if (blocked === null) return
    const step = blockNamed ? 'new' : 'pass'
    const marked = await waitingMarks.mark({ ...blocked, mailFromKey: null }, step)
    blockNamed = true
    if (marked > 0) log.debug('rows waiting for the block named', { marked, code: blocked.code })
    if (pacedNamed || (pacedAsked && !again)) return
    asking = true
    let paced: Awaited<ReturnType<typeof pacedRowsBlocked>>
    try {
      paced = await pacedRowsBlocked(d.db, blocked, d.worker.id)
    } finally {
      asking = false
    }
    pacedAsked = true
    pacedNamed = paced.everyone
    // A few ms past it: the entry reads live up to its deadline inclusive.
    if (paced.endsInMs !== undefined) endsTimer.arm(paced.endsInMs + ENDS_MARGIN_MS)
    if (paced.named > 0)
      log.debug('rows sent back for a pacing turn due and named by the block', {
        paced: paced.named,
      })
  }
  return {
    /** Names the rows the block holds; a failure is the loop's error event, and the loop goes on. */
    markWaiting: () =>
      markWaiting().catch((error) => {
        d.onEvent?.({ type: 'loop_error', db: d.dbName, where: 'mark_waiting', error })
      }),
    /** This block's pass made. */
    named: () => blockNamed,
    /** A claim was made: the next block is named from its pass. */
    claimed: () => {
      blockNamed = false
      pacedNamed = false
      pacedAsked = false
      askAgain = false
      endsTimer.clear()
    },
    /**
     * The worker's own entry noted a refusal (credential-refusal-note.ts): an ask this block made
     * before it, or makes now, is owed again. Returns whether one is (the caller wakes the loop).
     */
    refusalNoted: owe,
    /**
     * A worker that could send stopped cleanly (worker-stopped-notice.ts): likewise, and owed once
     * the turns are given up too (turns a later worker took since). None owed when this block has
     * not asked yet (its ask comes).
     */
    workerStopped: stoppedPeer,
    /** The drainer stops: its timer cleared. */
    stopped: () => endsTimer.clear(),
    /** An ask owed again: the loop calls markWaiting once more before it waits. */
    askOwed: () => askAgain,
  }
}
