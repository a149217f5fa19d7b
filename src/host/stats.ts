// Counters for the end-of-run summary: transactions, calls per Lua function,
// errors by kind. Incremented on the per-event path, so: plain fields and one Map.

export type ErrorKind = 'script' | 'timeout' | 'memory' | 'init' | 'missing_function'

export class RunStats {
  transactions = 0
  committed = 0
  rolledBack = 0
  events = 0
  sessions = 0
  readonly calls = new Map<string, number>()
  readonly errors: Record<ErrorKind, number> = { script: 0, timeout: 0, memory: 0, init: 0, missing_function: 0 }

  call(fn: string): void {
    this.calls.set(fn, (this.calls.get(fn) ?? 0) + 1)
  }

  get errorCount(): number {
    return Object.values(this.errors).reduce((a, b) => a + b, 0)
  }

  toJSON(): Record<string, unknown> {
    return {
      transactions: this.transactions,
      committed: this.committed,
      rolled_back: this.rolledBack,
      events: this.events,
      sessions: this.sessions,
      calls: Object.fromEntries([...this.calls].sort(([a], [b]) => a.localeCompare(b))),
      errors: { ...this.errors },
    }
  }
}
