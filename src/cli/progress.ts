// Progress on a terminal for long inputs: one line, redrawn at most 4 times a second.

import type { RunStats } from '../host/stats.js'

export class Progress {
  readonly #out: NodeJS.WriteStream
  readonly #stats: RunStats
  readonly #size: number
  readonly #read: () => number
  readonly #started = performance.now()
  #last = 0
  #shown = false

  constructor(out: NodeJS.WriteStream, stats: RunStats, size: number, read: () => number) {
    this.#out = out
    this.#stats = stats
    this.#size = size
    this.#read = read
  }

  tick(): void {
    const now = performance.now()
    if (now - this.#last < 250) return
    this.#last = now
    if (now - this.#started < 1000) return // short runs show no progress
    const s = this.#stats
    const pct = this.#size > 0 ? ` ${Math.min(100, (100 * this.#read()) / this.#size).toFixed(0)}%` : ''
    const rate = Math.round(s.transactions / ((now - this.#started) / 1000))
    this.#out.write(`\r\x1b[K dovepush:${pct} ${s.transactions.toLocaleString('en-US')} transactions, ${rate.toLocaleString('en-US')}/s, ${s.errorCount} errors`)
    this.#shown = true
  }

  done(): void {
    if (this.#shown) this.#out.write('\r\x1b[K')
  }
}
