// What every claim round's delivery is given: a lease's hand-over and end, MAIL_FROM's probe answer recorded beside the sends.
import type { ClaimRoundDeps } from './claim-round-deps.ts'
import type { DefaultSenderPause } from './default-sender-pause.ts'
import type { DeliveryDeps } from './deliver.ts'
import type { LoneTokenWait } from './lone-token-wait.ts'
import { probeAnswered } from './owed-probe.ts'

/** The same for each claim: built once by the drainer's claim round (claim-round.ts). */
export function createRoundDelivery(
  r: ClaimRoundDeps,
  parts: {
    /** The send gate, telling pauses and waiting for a refusal's clearing note. */
    gate: DeliveryDeps['gate']
    pause: DefaultSenderPause
    /** The settle queue whose rows given back during a stop wait for the claim under way. */
    givenBackAfterClaims: DeliveryDeps['settle']
    wakePeers: DeliveryDeps['givenBackForOthers']
    /** Whether a row is kept for a slow token request, before and in its send (lone-token-wait.ts). */
    keptForToken: LoneTokenWait | undefined
  },
): DeliveryDeps {
  const { d, log, deadlines, due, lastChecks } = r
  const { unsent, release } = r.leases
  const cfg = d.config
  const { gate, pause, givenBackAfterClaims, wakePeers, keptForToken } = parts
  return {
    dbName: d.dbName,
    db: d.db,
    sender: d.sender,
    gate,
    slots: d.slots,
    settle: givenBackAfterClaims,
    start: lastChecks,
    clock: d.clock,
    log,
    mailFrom: d.mailFrom,
    ...(d.allowedSenders && { allowedSenders: d.allowedSenders }),
    backoff: { baseMs: cfg.retryBaseSeconds * 1000, maxMs: cfg.retryMaxSeconds * 1000 },
    lookup: d.lookup,
    ...(d.lookupGraceSeconds !== undefined && { lookupGraceSeconds: d.lookupGraceSeconds }),
    ...(d.sendTimeoutMs !== undefined && { sendTimeoutMs: d.sendTimeoutMs }),
    ambiguousPolicy: d.ambiguousPolicy,
    ...(d.onEvent ? { onEvent: d.onEvent } : {}),
    ...(d.rng ? { rng: d.rng } : {}),
    deadlines,
    stopping: r.stopping,
    abort: r.abort,
    handedOver: (lease) => {
      if (unsent.delete(lease)) r.roomMade()
    },
    done: (lease, sent) => {
      const released = release(lease)
      if (pause.done(lease, sent === true) && pause.key !== null) {
        // The claims wait for the answer (limit 0 until answered). Beside the sends
        // (`besides`): the stop waits for it, also when the probe ends within the stop's grace
        // (the grace waits only for the deliveries running as it began).
        void r.besides.track(
          probeAnswered(d.db, { mailbox: pause.key, id: lease.id })
            .catch((err) => log.warn('could not record MAIL_FROM’s probe answered', { err }))
            .finally(() => {
              pause.answered(lease)
              r.roomMade()
            }),
        )
      } else if (released) r.roomMade()
    },
    onRetry: due.arm,
    givenBackForOthers: wakePeers,
    releasedForSelf: r.ownReleases.released,
    ...(keptForToken && {
      keptForToken: keptForToken.beforeSend,
      keptForTokenInSend: keptForToken.inSend,
    }),
    onMailboxPaused: pause.mailboxPaused,
  }
}
