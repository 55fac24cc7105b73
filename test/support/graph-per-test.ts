// A test file's Graph fake and engines, stopped after each test: the set-up the MAIL_FROM probe tests share.
import { afterEach } from 'bun:test'
import type { TestDb } from './db.ts'
import type { TestEngine } from './engine.ts'
import { type FakeGraph, startFakeGraph } from './fake-graph.ts'
import { graphWorker } from './graph-worker.ts'

/** Graph's 429 for a mailbox, asking 300 s: a pause past the hold, so the mailbox owes a probe. */
export const THROTTLED = { status: 429, code: 'ApplicationThrottled', retryAfter: '300' } as const

/** The test's fake (set it once started) and its engines (push each started one). */
export interface GraphPerTest {
  fake: FakeGraph | null
  readonly engines: TestEngine[]
}

/** Registers the afterEach that stops what a test left in `fake` and `engines`. */
export function useGraphPerTest(): GraphPerTest {
  const g: GraphPerTest = { fake: null, engines: [] }
  afterEach(async () => {
    for (const e of g.engines.splice(0)) await e.stop()
    await g.fake?.stop()
    g.fake = null
  })
  return g
}

/** Starts `g`'s fake for `mailboxes` (no concurrency limit to speak of), throttling `throttled` (THROTTLED). */
export async function startThrottlingGraph(
  g: GraphPerTest,
  throttled: string,
  mailboxes: string[],
): Promise<FakeGraph> {
  const fake = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000, mailboxes })
  g.fake = fake
  fake.setFaults({ pickSendMail: (mailbox) => (mailbox === throttled ? THROTTLED : undefined) })
  return fake
}

/**
 * A worker `w` sending as `mailFrom` through `g`'s fake, mailbox lookups off (a send's answer is all
 * that happens to its row), in `g`'s engines; not started.
 */
export function sendOnlyWorker(t: TestDb, g: GraphPerTest, mailFrom: string): TestEngine {
  if (!g.fake) throw new Error('start the fake first')
  const engine = graphWorker(t, g.fake, {
    workerId: 'w',
    mailFrom,
    graceSeconds: 30,
    lookups: false,
  })
  g.engines.push(engine)
  return engine
}
