// HeldSlot: a shared send slot this worker holds, with the clock times that bound its reuse and its expiry.

export interface HeldSlot {
  slot: number
  token: string
  /** Clock time just before the take was sent: bounds how long the slot may pass from send to send. */
  takenAt: number
  /** Clock time just before the last take or renewal was sent: the database's expiry is later than this + TTL. */
  sureAt: number
}
