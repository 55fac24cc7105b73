// lookUpInterruptedSend: an interrupted send asked of its row's sender mailbox, then of those its rows may have gone from before (sql/0056).
import type { DeliveryDeps } from './deliver.ts'
import type { LookupResult } from './mailbox-lookup.ts'
import { pastSenderMailboxes } from './past-senders.ts'
import type { Ready } from './send-attempt.ts'

interface Answer {
  verdict: LookupResult
  /** The mailbox the verdict is about: a throttle pauses it, not the row's own. */
  mailbox: string
  /** The verdict's throttle is a pause or an owed probe the gate already holds: nothing to pause. */
  held?: true
  /** Held by a pause whose cause is Graph refusing that mailbox (sql/0172): the row says so. */
  heldRefused?: true
  /** Held: run once the row's give-back is recorded (SendGate.heldFor). */
  givenBack?: () => Promise<void>
}

/**
 * The row's sender is resolved at send (its from, its template's from_address, MAIL_FROM), and a
 * redeploy or a template edit since the interrupted send may have changed it: a message not in its
 * mailbox is looked for in the mailboxes noted as past senders, whatever MAIL_FROM and
 * MAIL_FROM_ALLOWED say now (the lookup reads, it sends nothing), but, as a send would, not while
 * that mailbox is paused or its probe owed: the row waits for it as for its own mailbox's pause. The match stays the row's own by
 * its outbox id and database id, so another mailbox's copy is never taken for it. There, a
 * mailbox Graph no longer has (404) holds nothing to find: the next is asked; one the app may not
 * read (403) leaves the question open, as in the row's own: the ambiguous-send policy decides; a
 * throttle or a failure asks again later.
 */
export async function lookUpInterruptedSend(
  d: DeliveryDeps,
  lookup: NonNullable<DeliveryDeps['lookup']>,
  r: Ready,
): Promise<Answer> {
  const own = r.mail.from.address
  const ask = (mailbox: string) =>
    lookup(
      mailbox === own ? r.mail : { ...r.mail, from: { address: mailbox } },
      d.abort,
      d.keptForTokenInSend,
    ).catch(() => 'error' as const)
  const verdict = await ask(own)
  if (verdict !== 'not_found') return { verdict, mailbox: own }
  let past: string[]
  try {
    past = await pastSenderMailboxes(d.db, own)
  } catch (err) {
    d.log.warn('could not read the past sender mailboxes; will look again', { db: d.dbName, err })
    return { verdict: 'error', mailbox: own }
  }
  for (const mailbox of past) {
    // Asked without its permit (the row holds its own mailbox's): a paused mailbox, or one whose
    // probe is owed, is not asked before the gate would let a send to it go (the row waits).
    const held = await Promise.resolve(d.gate.heldFor?.(mailbox, r.lease.id) ?? null).catch(
      (err: unknown) => {
        d.log.warn('could not read a past sender mailbox pause; will look again', {
          db: d.dbName,
          err,
        })
        return 'error' as const
      },
    )
    if (held === 'error') return { verdict: 'error', mailbox: own }
    if (held !== null) {
      const { pausedForMs: throttledForMs, givenBack, refused } = held
      return {
        verdict: { throttledForMs },
        mailbox,
        held: true,
        ...(refused && { heldRefused: true }),
        ...(givenBack && { givenBack }),
      }
    }
    const there = await ask(mailbox)
    if (there === 'not_found' || (typeof there === 'object' && 'rejected' in there)) continue
    if (there === 'found') {
      d.log.info('an interrupted send found in a past sender mailbox', {
        db: d.dbName,
        outboxId: r.lease.id,
      })
    }
    return { verdict: there, mailbox }
  }
  return { verdict: 'not_found', mailbox: own }
}
