// The notification a worker's clean stop sends when a worker it leaves may be refused: each refused worker asks at once whether it is now every live worker's refusal.
/**
 * The payload on the outbox channel (listen-session.ts CHANNEL) of a worker's deregistration
 * (deregister-worker.ts) when its entry could send (entry-can-send.ts) and a live entry notes a
 * refusal. A refused worker asks whether any live worker can send once per block (block-naming.ts),
 * not per wake (that would be a statement per enqueue while blocked); the only working worker's
 * stop came up to a block (the refusal's cooldown, a minute) before it asked again, the pacing
 * turns kept meanwhile for a worker that was gone (paced-rows-blocked.ts). Names no worker, row or
 * address: every session listening on the channel hears it. An older binary hears a wake-up hint
 * (notifiedRowId: not an id) and claims once.
 */
export const WORKER_STOPPED = 'worker-stopped'

/** The notification says a worker that could send has stopped cleanly. */
export function tellsOfWorkerStop(payload: string | undefined): boolean {
  return payload === WORKER_STOPPED
}
