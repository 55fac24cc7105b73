// SendGate port: limits that must hold across every worker (provider concurrency, per-mailbox rate).

/**
 * A mailbox as the gate keys it (its slots, pacing and pauses): trimmed, lower case; SQL's
 * mailer.address_key (0039) keys a row's sender the same way.
 */
export const mailboxKey = (mailbox: string): string => mailbox.trim().toLowerCase()

export interface SendPermit {
  release(): Promise<void>
  /**
   * Set when the gate left the mailbox's pause to the last check before the send (startSends reads
   * it there, under this key), sparing a statement per send: no pacing was in force as it gave the
   * permit. Unset when it honoured the pause (or took a pacing turn) itself.
   */
  readonly checkPause?: string
  /**
   * A pacing turn of the mailbox was taken for this permit (or kept for it: acquire's turnKept),
   * named by the gate: the row's own, until it is sent or goes back, while no other is taken.
   */
  readonly turnTaken?: string
}

/**
 * The mailbox stands paused (a provider throttle) for longer than a row should wait holding its
 * place; or, `reserved`, the row's turn under the mailbox's pacing is that far off (another row
 * already waits in place for the mailbox) and has been reserved for it.
 */
export interface MailboxPaused {
  pausedForMs: number
  reserved?: boolean
  /** The pause's cause is Graph refusing the mailbox (sql/0172), not a throttle: the row says so. */
  refused?: true
  /** Run once the row's give-back is recorded (a wait that may have ended meanwhile). */
  givenBack?: () => Promise<void>
}

/** Graph's refusal of a mailbox itself, as a pause caused by it is told. */
export interface MailboxRefusal {
  code: string
  httpStatus?: number | undefined
}

export interface SendGate {
  /** True when the gate never waits, so the drainer may start a whole batch at once. */
  readonly open: boolean
  /**
   * The last check (with checkPause) found a newer worker's MAILBOX_RATE_PER_MINUTE in force, this
   * interval (ms): it started nothing, and the gate paces every send by it from now on.
   */
  pacingInForce?(intervalMs: number): void
  /**
   * A mailbox paused for longer than this sends its rows back (MailboxPaused) rather than holding
   * them: what counts as paused for a claim that leaves a paused MAIL_FROM's rows out. Unset: the
   * gate never pauses (file, discard).
   */
  readonly pausedBeyondMs?: number
  /**
   * Waits until a send to `mailbox` may start; null when `signal` aborted first; MailboxPaused
   * instead of waiting out a long pause, so the row can make room for other mailboxes' rows.
   * `readPause`: read the pause here even with `pauseKey` (the last check found it paused, or a
   * mailbox lookup is to come first). `rowId`: the row to send; while the mailbox's probe is owed
   * (after MAIL_FROM's pause) a row that is not it gets MailboxPaused. `turnKept`: the row asks
   * again after giving back a permit that took this pacing turn (turnTaken) to wait: it keeps that
   * turn, held only by a throttle or a probe owed to another row, unless another turn was taken or
   * came due since (pg: kept-turn-wait.ts).
   */
  acquire(
    mailbox: string,
    signal: AbortSignal,
    readPause?: boolean,
    rowId?: string,
    turnKept?: string,
  ): Promise<SendPermit | MailboxPaused | null>
  /**
   * The worker starts (before its first claim): the gate brings the shared limits' state in line
   * with its settings (pg-send-gate: the pacing rate, pacing-rate.ts).
   */
  start?(): Promise<void>
  /**
   * A provider throttle, or with `refused` Graph refusing the mailbox itself (its code and status,
   * which the pause's log line says instead; the pause keeps which, sql/0172): no worker sends from
   * `mailbox` for `ms`.
   */
  pause(mailbox: string, ms: number, refused?: MailboxRefusal): Promise<void>
  /**
   * For a provider request to `mailbox` made without its permit (a lookup in a past sender
   * mailbox, under the row's own): how long row `rowId` must wait, as acquire would send it back:
   * the throttle's pause still to run, or while the mailbox's probe is owed and the row is not it,
   * until that probe surely ends (givenBack: to run once the row's give-back is recorded). Null: it
   * may ask now. Unset: nothing holds a mailbox back (file, discard).
   */
  heldFor?(mailbox: string, rowId: string): Promise<MailboxPaused | null>
  /** The worker's stop began: slots given back from now on are freed together while sends still run (stop-gather.ts). */
  stopBegan?(): void
  /** Gives back whatever the gate still holds once no send will ask again (worker stop). */
  close?(): Promise<void>
}

const noPermit: SendPermit = { release: async () => {} }

/** For transports with no provider limits (file, discard). */
export const openGate: SendGate = {
  open: true,
  acquire: async (_mailbox, signal) => (signal.aborted ? null : noPermit),
  pause: async () => {},
}
