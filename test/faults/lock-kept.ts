// A stopping worker's liveness lock watched while Graph has not answered its sends: whether it was seen gone then.

/**
 * Polls `held` (the worker's liveness lock, read from pg_locks) until `answered()` (the Graph
 * fake's acceptances, counted before it answers) reaches `sends`; true when a read found the lock
 * gone while a send was still unanswered. A read is sent before it runs: on a loaded machine it may
 * run after the last answer, once the worker, its sends settled, let the lock go (milliseconds
 * after). So a gone lock counts only if a send is still unanswered once the read is in: it was then
 * unanswered when the read ran too.
 */
export async function lockLostWhileUnanswered(o: {
  held: () => Promise<boolean>
  answered: () => number
  sends: number
}): Promise<boolean> {
  while (o.answered() < o.sends) {
    if (!(await o.held()) && o.answered() < o.sends) return true
  }
  return false
}
