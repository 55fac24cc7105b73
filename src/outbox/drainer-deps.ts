// What one database's drainer is given: its database, transport, limits, clock and policies.
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.ts'
import type { WorkerConfig } from '../config.ts'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import type { claimBatch } from './claim.ts'
import type { EngineEventHandler } from './events.ts'
import type { Listener } from './listener.ts'
import type { MailboxLookup } from './mailbox-lookup.ts'
import type { SendGate } from './send-gate.ts'
import type { Sender } from './sender.ts'
import type { Slots } from './slots.ts'
import type { WorkerIdentity } from './worker-identity.ts'

export interface DrainerDeps {
  dbName: string
  db: Kysely<Database>
  sender: Sender
  gate: SendGate
  slots: Slots
  clock: Clock
  log: Logger
  worker: WorkerIdentity
  config: WorkerConfig
  mailFrom: string | null
  /** MAIL_FROM_ALLOWED's keys (config.allowedSenders); absent, any sender a row names. */
  allowedSenders?: ReadonlySet<string> | null
  lookup: MailboxLookup | null
  /** LOOKUP_GRACE_SECONDS (lookup-grace.ts) unless a test shortens it. */
  lookupGraceSeconds?: number
  ambiguousPolicy: 'resend' | 'hold'
  /**
   * Its database's LISTEN session, read for its state alone: while it listens, notifications are
   * heard and a backstop poll asks no more than its claim; once it polls (LISTEN_MODE=poll, or LISTEN
   * impossible), the poll is the only wake-up and comes at least once a second. Required, so that
   * no builder of a drainer (serve, the test and bench engines) can leave it out and poll as if deaf.
   */
  listener: Pick<Listener, 'state'>
  /** Replaces the poll interval the listener's state and POLL_INTERVAL_SECONDS make: tests only. */
  pollIntervalMs?: () => number
  /** ms during which no send can succeed (Graph: the credential stands refused): nothing is claimed. */
  sendBlockedForMs?: () => number
  /**
   * While `sendBlockedForMs` is above 0: what blocks the sends (Graph: the refusal's AADSTS code and
   * its first line), which the due pending rows are given once per block (waiting-rows.ts).
   */
  sendBlockedBy?: () => { code: string; message: string } | null
  /**
   * While the provider refuses the credential for good (Graph: Entra's code), whether or not a
   * cached token still serves: the code and how long it has stood, which the worker's registry
   * entry notes at each beat (sql/0198), with how long the cached token still serves sends (sql/0202:
   * 0 or absent, none). Absent: a sender without a credential.
   */
  credentialRefusal?: () => { code: string; forMs: number; servesForMs?: number } | null
  /**
   * Calls `listener` each time credentialRefusal's code changes (refused, another code, no
   * longer): the registry entry notes it then (credential-refusal-note.ts), not a lease length
   * later at an idle worker's next beat. Absent: a sender without a credential.
   */
  credentialRefusalChanged?: (listener: () => void) => void
  /**
   * Calls `listener` each time a provider token comes after none (the process's first, or the
   * first after a failure), at once if one came before: the rows given back for want of one are
   * brought due then (token-wait-rows.ts). Absent: a sender that needs no token.
   */
  tokenCame?: (listener: () => void) => void
  /**
   * While a send would wait on a slow provider token request (Graph: no cached token serves and
   * Entra has not answered for TOKEN_SLOW_MS): resolves when that request ends; else null. Nothing
   * is claimed meanwhile: the rows would only go back, for workers with a token. Absent: never.
   */
  heldForToken?: () => Promise<void> | null
  /**
   * The pool's Kysely (DbHandle.db), where a read may run under a statement_timeout of its own
   * (timedTransaction), which `db` (the statement route: no transactions) cannot: the registry
   * read a send makes while its token is slow, bounded by the send's deadline (lone-token-wait.ts).
   * Absent: on `db`, under the pool's statement_timeout; the send's wait for it ends by its deadline all the same.
   */
  poolDb?: Kysely<Database>
  /** How long one send may take (Graph's request timeout): a send starts only with that much lease left. */
  sendTimeoutMs?: number
  /** The claim statement (claimBatch); replaced only by tests that inject a failure into it. */
  claim?: typeof claimBatch
  onEvent?: EngineEventHandler
  rng?: () => number
}
