// A scripted Sender for engine tests: records every call, answers from a script, can hold sends open.
import type { OutboundMail, Sender, SendOutcome } from '../../src/outbox/sender.ts'

export interface FakeSender extends Sender {
  calls: OutboundMail[]
  /** Outcomes by outbox id (consumed in order); default `sent`. */
  script: Map<string, SendOutcome[]>
  /** While set, sends wait until `release()` (or their abort signal). */
  hold(): void
  release(): void
  inFlight(): number
}

export function createFakeSender(): FakeSender {
  const calls: OutboundMail[] = []
  const script = new Map<string, SendOutcome[]>()
  let gate: PromiseWithResolvers<void> | null = null
  let inFlight = 0
  return {
    name: 'fake',
    calls,
    script,
    hold: () => {
      gate ??= Promise.withResolvers<void>()
    },
    release: () => {
      gate?.resolve()
      gate = null
    },
    inFlight: () => inFlight,
    async send(mail, signal) {
      calls.push(mail)
      inFlight += 1
      try {
        if (gate) {
          const aborted = new Promise<void>((r) => signal.addEventListener('abort', () => r()))
          await Promise.race([gate.promise, aborted])
          if (signal.aborted) return { kind: 'retry', code: 'aborted', message: 'aborted' }
        }
        return script.get(mail.outboxId)?.shift() ?? { kind: 'sent' }
      } finally {
        inFlight -= 1
      }
    },
  }
}
