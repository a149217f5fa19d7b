// `GET /metrics` of `dovepush serve`: Prometheus text from a Registry of its
// own (never prom-client's global one). Counters the Host already keeps
// (RunStats: transactions, calls, script errors) are read at scrape time, so
// the per-event path does no metric work; only the script's HTTP requests
// (a histogram) and the server's own requests are observed as they happen.

import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { RunStats } from '../host/stats.js'

export interface QueueView {
  readonly depth: number
  readonly running: number
  readonly capacity: number
}

/** Label of `dovepush_http_requests_total{route}`: the fixed routes, anything else is `other`. */
export type Route = '/v1/transactions' | '/healthz' | '/metrics' | 'other'

export type RejectReason = 'queue_full' | 'shutting_down' | 'too_many'

export class ServeMetrics {
  readonly registry = new Registry()
  readonly #accepted: Counter
  readonly #rejected: Counter<'reason'>
  readonly #requests: Counter<'route' | 'code'>
  readonly #scriptHttp: Histogram<'module' | 'method' | 'status'>

  constructor(stats: RunStats, queue: QueueView) {
    const registers = [this.registry]
    this.#accepted = new Counter({
      name: 'dovepush_transactions_accepted_total',
      help: 'Transactions accepted into the queue (POST /v1/transactions answered 202, or 200 with ?wait=true)',
      registers,
    })
    this.#rejected = new Counter({
      name: 'dovepush_transactions_rejected_total',
      help: 'Valid transactions refused and not queued: queue_full (503), shutting_down (503), too_many (413: more in one request than the queue holds)',
      labelNames: ['reason'],
      registers,
    })
    for (const reason of ['queue_full', 'shutting_down', 'too_many'] as const) this.#rejected.inc({ reason }, 0)
    this.#requests = new Counter({
      name: 'dovepush_http_requests_total',
      help: 'Requests to this server by route and status code',
      labelNames: ['route', 'code'],
      registers,
    })
    this.#scriptHttp = new Histogram({
      name: 'dovepush_script_http_request_duration_seconds',
      help: 'Latency of the HTTP requests scripts made (dovecot.http from submit() to the response, socket.http per http.request), by module, method and final status (9xxx: Dovecot internal failures; 0: socket.http failed)',
      labelNames: ['module', 'method', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    })
    new Counter({
      name: 'dovepush_transactions_total',
      help: 'Transactions run through the script, by outcome (committed, rolled_back)',
      labelNames: ['outcome'],
      registers,
      collect() {
        this.reset()
        this.inc({ outcome: 'committed' }, stats.committed)
        this.inc({ outcome: 'rolled_back' }, stats.rolledBack)
      },
    })
    new Counter({
      name: 'dovepush_events_total',
      help: 'Events of committed transactions',
      registers,
      collect() {
        this.reset()
        this.inc(stats.events)
      },
    })
    new Counter({
      name: 'dovepush_script_calls_total',
      help: 'Calls into the script by Lua function (script_init, dovecot_lua_notify_begin_txn, …)',
      labelNames: ['function'],
      registers,
      collect() {
        this.reset()
        for (const [fn, n] of stats.calls) this.inc({ function: fn }, n)
      },
    })
    new Counter({
      name: 'dovepush_script_errors_total',
      help: 'Script errors by kind (script, timeout, memory, init, missing_function)',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset()
        for (const [kind, n] of Object.entries(stats.errors)) this.inc({ kind }, n)
      },
    })
    new Counter({
      name: 'dovepush_sessions_started_total',
      help: 'Sessions (Lua states) started',
      registers,
      collect() {
        this.reset()
        this.inc(stats.sessions)
      },
    })
    new Gauge({
      name: 'dovepush_queue_depth',
      help: 'Transactions waiting in the queue',
      registers,
      collect() {
        this.set(queue.depth)
      },
    })
    new Gauge({
      name: 'dovepush_queue_capacity',
      help: 'Transactions the queue holds before POSTs get 503 (--queue-size)',
      registers,
      collect() {
        this.set(queue.capacity)
      },
    })
    new Gauge({
      name: 'dovepush_queue_running_users',
      help: 'Users whose transactions are running now (at most --concurrency)',
      registers,
      collect() {
        this.set(queue.running)
      },
    })
    new Gauge({
      name: 'process_resident_memory_bytes',
      help: 'Resident memory size in bytes',
      registers,
      collect() {
        this.set(process.memoryUsage.rss())
      },
    })
  }

  accepted(n: number): void {
    this.#accepted.inc(n)
  }

  rejected(reason: RejectReason, n: number): void {
    this.#rejected.inc({ reason }, n)
  }

  request(route: Route, code: number): void {
    this.#requests.inc({ route, code: String(code) })
  }

  scriptHttp(module: string, method: string, status: number, ms: number): void {
    this.#scriptHttp.observe({ module, method, status: String(status) }, ms / 1000)
  }
}
