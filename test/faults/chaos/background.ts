// The harness's tasks that run beside the chaos turns (a worker's stop and restart, a Postgres outage).

export class Background {
  private readonly tasks = new Set<Promise<void>>()

  /** A task that fails is a problem of the run, not an unhandled rejection. */
  constructor(private readonly problems: string[]) {}

  run(f: () => Promise<void>): void {
    const p = f()
      .catch((e) => {
        this.problems.push(`background task failed: ${String(e)}`)
      })
      .finally(() => this.tasks.delete(p))
    this.tasks.add(p)
  }

  /** Waits for the tasks running now. */
  async settled(): Promise<void> {
    await Promise.all([...this.tasks])
  }
}
