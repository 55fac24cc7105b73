// The owed probes as the pause mix watches them: mailer.mailbox_pacing read every 100 ms, kept as spans in which a mailbox's probe stood owed.
import type { Database } from '../harness.ts'

/** A stretch of consecutive reads that each found `mailbox`'s probe owed (Date.now() times). */
export interface OwedSpan {
  mailbox: string
  /** When the first such read answered: owed from before it. */
  from: number
  /** When the last such read was sent: owed until after it. */
  to: number
  /** Every row a read found out as the probe. */
  probeIds: Set<string>
}

/** Reads until stopped; a read that fails (Postgres down) ends every open span. */
export class ProbeWatch {
  readonly spans: OwedSpan[] = []
  private readonly open = new Map<string, OwedSpan>()
  private running = true
  private readonly done: Promise<void>

  /** `note`: the timeline learns when a span opens and ends. */
  constructor(
    db: Database,
    private readonly note: (what: string) => void = () => {},
  ) {
    this.done = this.loop(db)
  }

  private async loop(db: Database): Promise<void> {
    while (this.running) {
      const sent = Date.now()
      const rows = await db
        .q<{ mailbox: string; probe_id: string | null }>(
          'select mailbox, probe_id::text from mailer.mailbox_pacing where probe_owed',
        )
        .catch(() => null)
      const answered = Date.now()
      const owed = new Map((rows ?? []).map((r) => [r.mailbox, r.probe_id]))
      for (const [mailbox, span] of this.open)
        if (!owed.has(mailbox)) {
          this.spans.push(span)
          this.open.delete(mailbox)
          this.note(`probe owed for ${mailbox} no more (probes ${[...span.probeIds].join(',')})`)
        }
      for (const [mailbox, probeId] of owed) {
        const span = this.open.get(mailbox) ?? {
          mailbox,
          from: answered,
          to: sent,
          probeIds: new Set(),
        }
        span.to = sent
        if (probeId !== null) span.probeIds.add(probeId)
        this.open.set(mailbox, span)
      }
      await Bun.sleep(100)
    }
  }

  /** Stops reading; the spans still open end at the last read. */
  async stop(): Promise<OwedSpan[]> {
    this.running = false
    await this.done
    this.spans.push(...this.open.values())
    this.open.clear()
    return this.spans
  }
}
