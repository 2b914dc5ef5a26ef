/**
 * A one-line progress bar on stderr while a phase runs (stdout stays clean for the
 * tables). On a terminal the line is redrawn in place; otherwise (CI, a log file) a
 * line is printed every 5 s at most.
 */
export class Progress {
  private lastPrint = 0;
  private readonly tty = process.stderr.isTTY === true;
  private active = false;

  constructor(private readonly label: string) {}

  update(done: number, total: number, detail: string): void {
    const width = 24;
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const filled = Math.round(frac * width);
    const line = `${this.label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${Math.round(frac * 100)}% ${detail}`;
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${line}`);
      this.active = true;
    } else if (Date.now() - this.lastPrint >= 5000 || frac >= 1) {
      this.lastPrint = Date.now();
      process.stderr.write(line + '\n');
    }
  }

  done(): void {
    if (this.tty && this.active) process.stderr.write('\r\x1b[2K');
    this.active = false;
  }
}
