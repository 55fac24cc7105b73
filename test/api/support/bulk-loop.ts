// An operator's bulk cancel or retry loop: called while `more`, each answer's nextCursor passed back, at most 10 calls.
import { expect } from 'bun:test'
import { type App, send } from './harness.ts'

export interface BulkLoopOptions {
  tk: string
  filter: object
  limit?: number
  /** The first call's cursor (none: the loop begins). */
  cursor?: string
  /** Runs after each call with the ids it acted on (the workers, a trigger, meanwhile). */
  between?: (acted: string[]) => Promise<void>
}

/** A call of a loop as the tests compare it: the ids it acted on, and those it named leftSending. */
export interface LoopAnswer {
  items: string[]
  leftSending?: string[]
}

/** Each call's answer (LoopAnswer), in order; a loop that does not end stops at 10 calls. */
export async function bulkLoopAnswers(
  app: App,
  action: 'cancel' | 'retry',
  o: BulkLoopOptions,
): Promise<LoopAnswer[]> {
  const answers: LoopAnswer[] = []
  let cursor = o.cursor
  for (let more = true; more && answers.length < 10; ) {
    const r = await send(app, 'POST', `/v1/outbox/${action}`, {
      token: o.tk,
      body: { filter: o.filter, limit: o.limit ?? 2, ...(cursor ? { cursor } : {}) },
    })
    expect(r.status).toBe(200)
    const body = r.body as {
      items: { id: string }[]
      more: boolean
      nextCursor?: string
      leftSending?: string[]
    }
    const acted = body.items.map((i) => i.id)
    answers.push({ items: acted, ...(body.leftSending ? { leftSending: body.leftSending } : {}) })
    await o.between?.(acted)
    more = body.more
    cursor = body.nextCursor
  }
  return answers
}

/** The ids each call of the loop acted on, in order; a loop that does not end stops at 10 calls. */
export async function bulkLoop(
  app: App,
  action: 'cancel' | 'retry',
  o: BulkLoopOptions,
): Promise<string[][]> {
  return (await bulkLoopAnswers(app, action, o)).map((a) => a.items)
}

/**
 * A call's answer as the leftSending tests compare it: [the ids it acted on, `more`, the rows it
 * named in `leftSending` (none: []), whether it said `leftSendingMore`].
 */
export function leftOf(body: unknown): [string[], boolean, string[], boolean] {
  const b = body as {
    items: { id: string }[]
    more: boolean
    leftSending?: string[]
    leftSendingMore?: true
  }
  return [b.items.map((i) => i.id), b.more, b.leftSending ?? [], b.leftSendingMore === true]
}
