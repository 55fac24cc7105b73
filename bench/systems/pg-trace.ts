// A trace of every pg client of this process: each statement's call and answer, each notification's arrival (BENCH_PG_TRACE=1).
//
// bench/idle-stages.ts times a pickup stage by stage in each system's own process, the same way
// for every system that speaks through `pg` (ours and graphile-worker both do): it patches
// pg.Client once, so no system's code is changed for it. Times are epoch milliseconds
// (performance.timeOrigin + performance.now()), comparable across the benchmark's processes.
import pg from 'pg'

export interface PgTraceEvent {
  /** `call`: a statement handed to client.query; `answer`: its promise settled; `notify`: a notification emitted. */
  kind: 'call' | 'answer' | 'notify'
  /** The statement's `/* prepared x *\/` marker or its first words; the channel for a notification. */
  what: string
  /** Which client of the process (numbered in order of first use). */
  client: number
  at: number
}

const events: PgTraceEvent[] = []
const ids = new WeakMap<pg.Client, number>()
let installed = false
let clients = 0
const epoch = () => performance.timeOrigin + performance.now()
const idOf = (c: pg.Client) => {
  let id = ids.get(c)
  if (id === undefined) {
    id = ++clients
    ids.set(c, id)
  }
  return id
}

/** What a statement is called in the trace: its prepared marker, else its first 40 characters. */
export function statementLabel(text: string): string {
  return (
    /\/\* prepared ([a-z_0-9]+) \*\//.exec(text)?.[1] ??
    text.replace(/\s+/g, ' ').trim().slice(0, 40)
  )
}

/** Patches pg.Client (once) so that every client of this process records its statements and notifications. */
export function installPgTrace(): void {
  if (installed) return
  installed = true
  const plainQuery = pg.Client.prototype.query as unknown as (...a: unknown[]) => unknown
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const at = epoch()
    const r = plainQuery.apply(this, args) as Promise<unknown> | undefined
    const q = args[0] as string | { text?: string }
    const what = statementLabel(typeof q === 'string' ? q : (q?.text ?? ''))
    const client = idOf(this)
    events.push({ kind: 'call', what, client, at })
    if (typeof r?.then === 'function') {
      const answered = () => events.push({ kind: 'answer', what, client, at: epoch() })
      void r.then(answered, answered)
    }
    return r
  } as unknown as pg.Client['query']
  const plainEmit = pg.Client.prototype.emit
  pg.Client.prototype.emit = function (
    this: pg.Client,
    event: string | symbol,
    ...args: unknown[]
  ) {
    if (event === 'notification') {
      const at = epoch()
      const channel = (args[0] as { channel?: string } | undefined)?.channel ?? ''
      events.push({ kind: 'notify', what: channel, client: idOf(this), at })
    }
    return plainEmit.call(this, event, ...args)
  }
}

/** The events recorded since the last call, oldest first; the buffer is emptied. */
export function takePgTrace(): PgTraceEvent[] {
  return events.splice(0, events.length)
}
