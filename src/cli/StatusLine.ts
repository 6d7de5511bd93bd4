/**
 * The bottom line of a terminal, owned by a run's progress display while the run is on. Log lines are
 * printed above it (`print`) so the two never garble each other; redrawn in place with Node's own
 * readline cursor functions.
 */
import * as readline from "node:readline"
import { FiberRef } from "effect"

export class StatusLine {
  private text = ""
  constructor(private readonly stream: NodeJS.WriteStream) {}
  private clear() {
    if (this.text === "") return
    readline.clearLine(this.stream, 0)
    readline.cursorTo(this.stream, 0)
  }
  /** print a line above the status line */
  print(line: string) {
    this.clear()
    this.stream.write(line + "\n")
    if (this.text !== "") this.stream.write(this.text)
  }
  show(text: string) {
    this.clear()
    this.text = text.slice(0, Math.max(10, (this.stream.columns ?? 100) - 1))
    this.stream.write(this.text)
  }
  end() {
    this.clear()
    this.text = ""
  }
}

/**
 * The status line of the current run, while one is on screen: the logger prints through it. Per fiber,
 * so two runs in one process never print through each other's.
 */
export const CurrentStatusLine: FiberRef.FiberRef<StatusLine | undefined> = FiberRef.unsafeMake<StatusLine | undefined>(
  undefined
)
