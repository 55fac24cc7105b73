// HeldSlot: a shared send slot this worker holds, with the monotonic readings that bound its reuse and its expiry.

export interface HeldSlot {
  slot: number
  token: string
  /**
   * monotonicNow just before the take was sent: bounds how long the slot may pass from send to send.
   * Monotonic, as is sureAt: a wall clock stepped back would keep a slot "young" past its expiry in
   * the database, and another worker could take it while this one still sends on it.
   */
  takenAt: number
  /** monotonicNow just before the last take or renewal was sent: the database's expiry is later than this + TTL. */
  sureAt: number
}
