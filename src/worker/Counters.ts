/** The worker's own counts, for /metrics: jobs running now, and jobs ended per stream and outcome. */
export class Counters {
  running = 0
  readonly completed = new Map<string, number>()
  readonly failed = new Map<string, number>()

  started(): void {
    this.running += 1
  }

  /** a job handed back at a stop is neither completed nor failed */
  ended(stream: string, outcome: "completed" | "retry" | "handed_back" | "failed"): void {
    this.running -= 1
    const into = outcome === "completed" ? this.completed : outcome === "handed_back" ? undefined : this.failed
    into?.set(stream, (into.get(stream) ?? 0) + 1)
  }
}
