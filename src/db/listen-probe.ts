// Whether a LISTEN session hears a notification sent from another session: the proof that LISTEN holds.
import type pg from 'pg'
import { systemClock, waitAtMost } from '../clock.ts'
import { openProbeSession, type ProbeSession } from './probe-session.ts'

/**
 * Notifies a channel of the session's own from a second, short-lived session to `url`, and waits up
 * to `timeoutMs` for it on `listening`. A transaction pooler that hands a quiet client the same
 * server session for each transaction (PgBouncer) passes pg_listening_channels(), yet drops a
 * notification that arrives while no transaction of that client runs ("got packet 'A' from server
 * when not linked"): only this round trip tells. Null when no second session could be opened (a
 * role or server at its connection limit, where one session is all a worker may hold): the caller
 * then has only pg_listening_channels()'s word. Throws when `listening` itself fails (at once, with
 * its error, even while no statement of it runs) or leaves a statement unanswered for `timeoutMs`
 * (a silent session is in doubt, not pooled), and when `signal` aborts (a stop, migrate's
 * deadline): no second session is opened after it, one still connecting or sending is dropped, and
 * the wait for the notification ends.
 */
export async function hearsOtherSessions(
  listening: pg.Client,
  o: {
    url: string
    backendPid: number
    applicationName: string
    timeoutMs: number
    signal?: AbortSignal
    /**
     * The second session, opened by the caller beforehand (openProbeSession with the same url,
     * timeout and signal) so that it connects meanwhile; the probe ends it, without waiting for
     * the end (its end() is once only: the caller may). Else the probe opens one once its channel
     * is listened on, and ends it before it returns.
     */
    session?: ProbeSession
  },
): Promise<boolean | null> {
  // A channel of this probe's alone: behind a transaction pooler, workers' LISTEN sessions share
  // server sessions, so backend pids, and a probe must not hear another's notification. (64 random
  // bits; the name stays well within an identifier's 63 bytes.)
  const nonce = crypto.randomUUID().replaceAll('-', '').slice(0, 16)
  const channel = `mailer_outbox_probe_${o.backendPid}_${nonce}`
  const heard = Promise.withResolvers<boolean | null>()
  const onNotification = (n: pg.Notification) => {
    if (n.channel === channel) heard.resolve(true)
  }
  listening.on('notification', onNotification)
  // No verdict: the throwIfAborted after the wait says why.
  const onAbort = () => heard.resolve(null)
  o.signal?.addEventListener('abort', onAbort, { once: true })
  // The session's own failure or end (a terminated backend) while no statement of it runs: it
  // hears nothing more, so the waits for the notification and its sending end with its error.
  // Waited out, they held a listener's reconnect, and new rows' pickup, for `timeoutMs` (5 s).
  const lost = Promise.withResolvers<never>()
  lost.promise.catch(() => {})
  const onError = (err: Error) => lost.reject(err)
  const onEnd = () => lost.reject(new Error('the LISTEN session ended while it was probed'))
  listening.on('error', onError)
  listening.on('end', onEnd)
  let timer: ReturnType<typeof setTimeout> | undefined
  let other: ProbeSession | undefined
  const answered = <T>(p: Promise<T>) => waitAtMost(systemClock, p, o.timeoutMs)
  try {
    await answered(listening.query(`listen ${channel}`))
    o.signal?.throwIfAborted()
    other = o.session ?? openProbeSession(o)
    const notified = await Promise.race([other.notify(channel), lost.promise])
    // Dropped by a stop: nothing more is asked of either session.
    o.signal?.throwIfAborted()
    // Its end (the server's goodbye, a backend's exit) runs while the notification is awaited: a
    // caller's own session is the caller's to wait for (the listener's start does not).
    const ended = other.end()
    if (notified) timer = setTimeout(() => heard.resolve(false), o.timeoutMs)
    else heard.resolve(null)
    const arrived = await Promise.race([heard.promise, lost.promise])
    o.signal?.throwIfAborted()
    // Answered, the session is alive: a notification missed then is the pooler's doing.
    await answered(listening.query(`unlisten ${channel}`))
    if (!o.session) await ended
    return arrived
  } finally {
    clearTimeout(timer)
    // One this probe opened is ended however it went (end() is once only).
    if (!o.session) void other?.end()
    listening.off('notification', onNotification)
    listening.off('error', onError)
    listening.off('end', onEnd)
    o.signal?.removeEventListener('abort', onAbort)
  }
}
