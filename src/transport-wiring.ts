// The configured transport wired for serve and send-test: its sender, its mailbox lookup and the limits its workers share.
import { join } from 'node:path'
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
import { portalThumbprint } from './transport/graph-credential.ts'
import type { GraphSender } from './transport/graph-sender.ts'
import { createGraphTransport } from './transport/graph-transport.ts'

export interface Transport {
  sender: Sender
  /**
   * The sender of one database's rows: `sender`, except the file transport with several databases,
   * which writes each one's files in a directory of its own (ids repeat across databases: one
   * directory would keep only the last of each id), and Graph's, whose messages carry the
   * database's name and `id`'s answer, its own id (mailer.database_identity), read at the first send.
   */
  senderFor(db: string, id?: () => Promise<string>): Sender
  /**
   * The mailbox lookup for one database's rows (its log lines name it), which finds only messages
   * carrying `id`'s answer (or, sent by a release before it, the row's own mail); null when not
   * permitted.
   */
  lookupFor(db: string, id?: () => Promise<string>): MailboxLookup | null
  /**
   * Limits shared by every worker on one database (Graph only); `lockNote`: the note of the
   * holder's liveness lock while its LISTEN session holds it, so that its death frees its slots.
   */
  gateFor(db: DbHandle, holder: string, lockNote?: () => string | null): SendGate
  problem(): string | null
  /** Something to act on that stops no send yet (Graph: a refused credential while a cached token serves). */
  warning(): string | null
  /**
   * The app's credential (Graph: a certificate or a client secret) and whether the provider refuses
   * it for good now (Entra's AADSTS refusal, a cached token serving or not); absent: none.
   */
  credential?: {
    kind: 'certificate' | 'secret'
    refused(): boolean
    /** While refused: the provider's code, how long the refusal has stood, how long a cached token serves on (registry entries note them). */
    refusal(): { code: string; forMs: number; servesForMs?: number } | null
    /** Calls `listener` each time refusal()'s code changes (refused, another code, no longer). */
    onRefusalChanged(listener: () => void): void
  }
  /** True while the provider refuses the configured sender mailbox (MAIL_FROM); absent: never. */
  senderMailboxRefused?(): boolean
  /** What keeps the provider out of reach now (Graph: no connection, every token refused); absent: never. */
  providerOutage?(): string | null
  /** ms during which no send can succeed (Graph: the credential stands refused); 0 when sends may go. */
  blockedForMs(): number
  /** While blockedForMs is above 0: its code and first line (Graph: Entra's AADSTS refusal); else null. */
  blockedBy(): { code: string; message: string } | null
  /** While a send would wait on a slow token request (Graph): resolves when it ends; else null. Absent: never. */
  heldForToken?(): Promise<void> | null
  /** The certificate the provider's credential is (Graph: its portal thumbprint and notAfter, epoch ms); absent: none. */
  certificate?: { thumbprint: string; notAfter: number }
  /** As GraphTransport's onTokenCame: told when a provider token comes after none; absent: no token needed. */
  onTokenCame?(listener: () => void): void
  /** Prepares what the first send would otherwise wait for (Graph: the first token), in the background. */
  warmUp(): void
  /**
   * Keeps what sends need fresh with none due (Graph: the token refreshed ahead on a timer, a
   * refusal met early); returns its end, called at stop. Absent: nothing ages (file, discard).
   */
  keepFresh?(): () => void
}

/** A sender that sends at once: no lookup, no shared limits, nothing to warm up (file, discard, tests). */
export function immediateTransport(
  sender: Sender,
  senderFor: (db: string) => Sender = () => sender,
): Transport {
  return {
    sender,
    senderFor,
    lookupFor: () => null,
    gateFor: () => openGate,
    problem: () => null,
    warning: () => null,
    blockedForMs: () => 0,
    blockedBy: () => null,
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
    case 'file': {
      const sender = createFileSender(config.fileDir)
      if (config.databases.length < 2) return immediateTransport(sender)
      // Database names are 1-40 of a-z 0-9 _ - (config/database-list.ts): safe as directory names.
      const perDatabase = new Map(
        config.databases.map((d) => [d.name, createFileSender(join(config.fileDir, d.name))]),
      )
      return immediateTransport(sender, (db) => perDatabase.get(db) ?? sender)
    }
    case 'graph': {
      const g = config.graph!
      const graph = createGraphTransport(g, config.mailFrom!, {
        fetch,
        clock: systemClock,
        log,
        ...(onTokenRefresh ? { onTokenRefresh } : {}),
      })
      // One sender (one token cache) for every database; each database's messages and lines name it.
      const alone = config.databases.length <= 1
      const senderFor = (db: string, id?: () => Promise<string>): GraphSender =>
        graph.sender.forDatabase(db, { alone, ...(id ? { id } : {}) })
      return {
        sender: graph.sender,
        senderFor,
        lookupFor: (db, id) => {
          if (!g.mailboxLookup) return null
          const sender = senderFor(db, id)
          return (mail, signal, kept) =>
            sender.lookupSentMessage(mail.from.address, mail.outboxId, signal, mail, kept)
        },
        gateFor: (db, holder, lockNote) =>
          createPgSendGate({
            db: db.statements.db,
            clock: systemClock,
            log: log.child({ db: db.name }),
            holder,
            maxConcurrency: config.limits.graphMaxConcurrency,
            ratePerMinute: config.limits.mailboxRatePerMinute,
            slotTtlMs: g.requestTimeoutMs + 15_000,
            ...(lockNote ? { lockNote } : {}),
          }),
        problem: graph.problem,
        warning: graph.warning,
        blockedForMs: graph.blockedForMs,
        blockedBy: graph.blockedBy,
        heldForToken: graph.heldForToken,
        onTokenCame: graph.onTokenCame,
        senderMailboxRefused: graph.senderMailboxRefused,
        credential: {
          kind: graph.credential.info.kind,
          refused: graph.credentialRefused,
          refusal: graph.credentialRefusal,
          onRefusalChanged: graph.onCredentialRefusalChanged,
        },
        providerOutage: graph.graphOutage,
        ...(graph.credential.info.kind === 'certificate'
          ? {
              certificate: {
                thumbprint: portalThumbprint(graph.credential.info.x5t),
                notAfter: graph.credential.info.notAfter,
              },
            }
          : {}),
        warmUp: graph.warmUp,
        keepFresh: graph.keepTokenFresh,
      }
    }
  }
}
