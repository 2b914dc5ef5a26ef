/**
 * The stops of what a node has started, run newest first: what a half-started node releases
 * when a later part fails to start, and what a clean stop runs. One list, so a part added to
 * the node is released on every path and in the right order.
 */
export class StopStack {
  private readonly steps: Array<() => unknown> = [];

  /** Registers how to stop something that has just started (or is about to). */
  push(step: () => unknown): void {
    this.steps.push(step);
  }

  /** Runs every step, newest first, each even when an earlier one failed; rejects with the first failure. */
  async unwind(): Promise<void> {
    let failure: { err: unknown } | undefined;
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      try {
        await step();
      } catch (err) {
        failure ??= { err };
      }
    }
    if (failure) throw failure.err;
  }
}
