// Builds the Graph transport from configuration: credential (checked at start), one token cache, the sender.
import { type Clock, monotonicNow } from '../clock.ts'
import type { GraphConfig } from '../config/graph-settings.ts'
import type { Logger } from '../log.ts'
import { type GraphCredential, loadGraphCredential } from './graph-credential.ts'
import type { GraphOutageCause } from './graph-outage.ts'
import { createGraphSender, type GraphSender } from './graph-sender.ts'
import { createTokenSource } from './graph-token.ts'
import { refusalReason, sendBlock, standingRefusal } from './standing-refusal.ts'
import { graphScopeFor, tokenUrlFor } from './token-endpoint.ts'
import type { TokenSource } from './token-source.ts'
import type { SetTimer } from './unref-timer.ts'

export interface GraphTransport {
  sender: GraphSender
  tokens: TokenSource
  credential: GraphCredential
  /**
   * A secret-free reason when Graph cannot work until someone acts (e.g. certificate not
   * registered) and no cached token serves sends meanwhile.
   */
  problem(): string | null
  /**
   * The same reason while a cached token still serves sends (a refusal met by a proactive
   * refresh): nothing stops yet, but it will when that token's use ends, unless someone acts. Also
   * MAIL_FROM refused by Graph: its rows wait, the other mailboxes' rows still go. And Graph out of
   * reach or refusing every token: every row waits, uncounted, while one request probes.
   */
  warning(): string | null
  /**
   * True while Entra refuses the credential for good (the last token request's answer), whether or
   * not a cached token still serves; false once a token comes. Asks Entra nothing.
   */
  credentialRefused(): boolean
  /**
   * While credentialRefused: Entra's code (never its text, which names the app and may name the
   * tenant) and how long the refusal has stood (ms since the first refused request after a token
   * or a start), which the worker's registry entry notes (sql/0198); and how long the cached token
   * still serves sends (0: none), which it notes too (sql/0202); else null.
   */
  credentialRefusal(): { code: string; forMs: number; servesForMs: number } | null
  /**
   * Calls `listener` each time credentialRefusal's code changes, as a token request's answer makes
   * it (Entra refuses the credential, refuses it with another code, or no longer: a token came, or
   * another answer), and when, the refusal standing, Graph's 401 drops the cached token that still
   * served sends (servesForMs ends then, not at the use's end the entry noted): the worker's
   * registry entry notes it then, not at its next beat (up to a lease length), while which another
   * worker read it as able to send (rows given back to it, pacing turns left with it). Not for a
   * refusal that stands, request after request, nor for a 401 with no refusal standing (the token
   * request it begins tells its answer).
   */
  onCredentialRefusalChanged(listener: () => void): void
  /** True while Graph refuses the configured sender mailbox (MAIL_FROM) itself; see sender-mailbox.ts. */
  senderMailboxRefused(): boolean
  /** What keeps Graph away from this process now (no connection, every token refused), else null. */
  graphOutage(): GraphOutageCause | null
  /**
   * While the credential stands refused and no cached token serves: ms until Entra is asked again;
   * workers claim nothing meanwhile. A refusal met by a proactive refresh blocks nothing until the
   * cached token's use ends (its last 5 minutes): sends until then still succeed.
   */
  blockedForMs(): number
  /** While blockedForMs is above 0: the refusal's AADSTS code and its first line; else null. */
  blockedBy(): { code: string; message: string } | null
  /**
   * While Entra leaves the token request unanswered past TOKEN_SLOW_MS and no cached token serves:
   * resolves when that request ends; else null. Workers claim nothing meanwhile (drainer.ts).
   */
  heldForToken(): Promise<void> | null
  /**
   * Calls `listener` each time a token comes after none (the process's first, or the first after
   * a failure: the credential fixed, Entra back), and at once if one has come and none failed since.
   */
  onTokenCame(listener: () => void): void
  /**
   * Asks Entra for the first token in the background: the first send after a start does not wait
   * for it, and a refused credential shows in readiness before any mail is due. Never throws.
   */
  warmUp(): void
  /**
   * Refreshes the token ahead on a timer (TokenSource.keepFresh), sends or none: a worker's, whose
   * readiness and registry entry then name a refusal before mail stops. Returns its end.
   */
  keepTokenFresh(): () => void
}

/** Throws AppError('config_invalid') for an unreadable PEM, a key that does not match, or an expired certificate. */
export function createGraphTransport(
  config: GraphConfig,
  mailFrom: string,
  d: {
    fetch: typeof fetch
    clock: Clock
    log: Logger
    onTokenRefresh?: (outcome: 'success' | 'failure', code?: string) => void
    /** When a token request counts as slow (token-slow.ts TOKEN_SLOW_MS unless given). */
    tokenSlowMs?: number
    /** keepTokenFresh's timer (unref-timer.ts: a real, unref'd one unless given). */
    setTimer?: SetTimer
  },
): GraphTransport {
  // A certificate past its end (or before its start) loads: each token request is refused for it,
  // so the API and health stay up and say so, rather than the start ending (exit 2).
  const credential = loadGraphCredential(config, d.clock.now(), 'at-each-token')
  // The last token request's outcome (none yet: undefined), and who is told when one comes after none.
  let lastRefresh: 'success' | 'failure' | undefined
  // Since when (a monotonic reading) Entra has refused the credential for good, request after
  // request; cleared by a token or by any other answer (a refusal no longer stands then).
  let refusedSince: number | undefined
  // The code credentialRefusal last told its listeners of (null: none), and those listeners.
  let refusedCode: string | null = null
  const refusalChanged: (() => void)[] = []
  const tokenCame: (() => void)[] = []
  // One token cache per process, shared by every database's drainer.
  const tokens = createTokenSource({
    fetch: d.fetch,
    clock: d.clock,
    log: d.log,
    clientId: config.clientId,
    credential,
    tokenUrl: tokenUrlFor(config.authorityUrl, config.tenantId),
    scope: graphScopeFor(config.apiUrl),
    ...(d.tokenSlowMs !== undefined && { slowMs: d.tokenSlowMs }),
    ...(d.setTimer && { setTimer: d.setTimer }),
    // Graph's 401 while refused only: a healthy send writes nothing, nor a 401 with no refusal.
    onDropped: () => {
      if (standingRefusal(tokens) !== null) for (const listener of refusalChanged) listener()
    },
    onRefresh: (outcome, code) => {
      d.onTokenRefresh?.(outcome, code)
      const refusal = outcome === 'failure' ? standingRefusal(tokens) : null
      refusedSince = refusal ? (refusedSince ?? monotonicNow(d.clock)) : undefined
      const came = outcome === 'success' && lastRefresh !== 'success'
      lastRefresh = outcome
      const changed = (refusal?.code ?? null) !== refusedCode
      refusedCode = refusal?.code ?? null
      if (changed) for (const listener of refusalChanged) listener()
      if (came) for (const listener of tokenCame) listener()
    },
  })
  const sender = createGraphSender({
    config,
    mailFrom,
    tokens,
    fetch: d.fetch,
    clock: d.clock,
    log: d.log,
  })
  return {
    sender,
    tokens,
    credential,
    onCredentialRefusalChanged(listener) {
      refusalChanged.push(listener)
    },
    onTokenCame(listener) {
      tokenCame.push(listener)
      if (lastRefresh === 'success') listener()
    },
    warmUp() {
      // A failure is logged and kept by the token source (readiness, the next send's error).
      tokens.getToken().catch(() => {})
    },
    keepTokenFresh: () => tokens.keepFresh(),
    problem() {
      const refused = refusalReason(tokens)
      return refused && tokens.servesForMs() === 0 ? refused : null
    },
    warning() {
      const refused = refusalReason(tokens)
      const servesForMs = tokens.servesForMs()
      const others = [sender.reachability.warning(), sender.senderMailbox.warning()]
      if (refused && servesForMs > 0) {
        const until = new Date(d.clock.now() + servesForMs).toISOString()
        others.unshift(`${refused}; sends go on with the cached token until ${until}`)
      }
      const said = others.filter((w) => w !== null)
      return said.length > 0 ? said.join('; ') : null
    },
    credentialRefused: () => standingRefusal(tokens) !== null,
    credentialRefusal() {
      const e = standingRefusal(tokens)
      if (e === null) return null
      const since = refusedSince ?? monotonicNow(d.clock)
      return {
        code: e.code,
        forMs: Math.max(0, monotonicNow(d.clock) - since),
        servesForMs: tokens.servesForMs(),
      }
    },
    senderMailboxRefused: () => sender.senderMailbox.isRefused(),
    graphOutage: () => sender.reachability.cause(),
    blockedForMs: () => sendBlock(tokens)?.forMs ?? 0,
    heldForToken: () => tokens.slowRequest(),
    blockedBy() {
      const block = sendBlock(tokens)
      return block ? { code: block.refusal.code, message: block.refusal.message } : null
    },
  }
}
