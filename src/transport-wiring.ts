// The configured transport wired for serve and send-test: its sender, its mailbox lookup and the limits its workers share.
import { systemClock } from './clock.ts'
import type { Config } from './config.ts'
import type { DbHandle } from './db/open.ts'
import type { Logger } from './log.ts'
import type { MailboxLookup } from './outbox/mailbox-lookup.ts'
import { createPgSendGate } from './outbox/pg-send-gate.ts'
import { openGate, type SendGate } from './outbox/send-gate.ts'
import type { Sender } from './outbox/sender.ts'
import { createDiscardSender } from './transport/discard-sender.ts'
import { createFileSender } from './transport/file-sender.ts'
import { createGraphTransport } from './transport/graph-transport.ts'

export interface Transport {
  sender: Sender
  lookup: MailboxLookup | null
  /** Limits shared by every worker on one database (Graph only). */
  gateFor(db: DbHandle, holder: string): SendGate
  problem(): string | null
  /** Something to act on that stops no send yet (Graph: a refused credential while a cached token serves). */
  warning(): string | null
  /** ms during which no send can succeed (Graph: the credential stands refused); 0 when sends may go. */
  blockedForMs(): number
  /** Prepares what the first send would otherwise wait for (Graph: the first token), in the background. */
  warmUp(): void
}

/** A sender that sends at once: no lookup, no shared limits, nothing to warm up (file, discard, tests). */
export function immediateTransport(sender: Sender): Transport {
  return {
    sender,
    lookup: null,
    gateFor: () => openGate,
    problem: () => null,
    warning: () => null,
    blockedForMs: () => 0,
    warmUp: () => {},
  }
}

export function createTransport(
  config: Config,
  log: Logger,
  onTokenRefresh?: (outcome: 'success' | 'failure', code?: string) => void,
): Transport {
  switch (config.transport) {
    case 'discard':
      return immediateTransport(createDiscardSender())
    case 'file':
      return immediateTransport(createFileSender(config.fileDir))
    case 'graph': {
      const g = config.graph!
      const graph = createGraphTransport(g, config.mailFrom!, {
        fetch,
        clock: systemClock,
        log,
        ...(onTokenRefresh ? { onTokenRefresh } : {}),
      })
      return {
        sender: graph.sender,
        lookup: g.mailboxLookup
          ? (mail, signal) =>
              graph.sender.lookupSentMessage(mail.from.address, mail.outboxId, signal)
          : null,
        gateFor: (db, holder) =>
          createPgSendGate({
            db: db.statements.db,
            clock: systemClock,
            log,
            holder,
            maxConcurrency: config.limits.graphMaxConcurrency,
            ratePerMinute: config.limits.mailboxRatePerMinute,
            slotTtlMs: g.requestTimeoutMs + 15_000,
          }),
        problem: graph.problem,
        warning: graph.warning,
        blockedForMs: graph.blockedForMs,
        warmUp: graph.warmUp,
      }
    }
  }
}
