// The queue of `dovepush serve`: one FIFO lane per user, at most
// `concurrency` lanes running at once, `capacity` jobs waiting in all.
//
// A lane runs its jobs one after the other (per-user order), so the Host
// never holds more than one transaction of a user. A job that finishes
// synchronously (the script did not wait) is followed by the next at once;
// after `turn` jobs in a row the lane goes to the back of the ready list, so
// a busy user cannot starve the others, and after `tick` synchronous jobs
// the queue yields to the event loop, so the server keeps answering.

export interface UserQueueOptions<T> {
  /** Jobs waiting (not yet running) before offer() refuses. */
  readonly capacity: number
  /** Lanes (users) running at once. */
  readonly concurrency: number
  /** The lane a job belongs to. */
  readonly key: (job: T) => string
  /** Runs a job; synchronous unless it waits. Must not throw; a throw or rejection goes to onError. */
  readonly run: (job: T) => void | Promise<void>
  readonly onError: (job: T, err: unknown) => void
  /** Jobs a lane runs in a row before the next lane's turn (default 32). */
  readonly turn?: number
  /** Synchronous jobs run per event-loop turn before yielding to I/O (default 256). */
  readonly tick?: number
}

interface Lane<T> {
  readonly key: string
  jobs: T[]
  head: number
  running: boolean
  ready: boolean
}

export class UserQueue<T> {
  readonly capacity: number
  readonly concurrency: number
  readonly #o: UserQueueOptions<T>
  readonly #turn: number
  readonly #tick: number
  readonly #lanes = new Map<string, Lane<T>>()
  #ready: Array<Lane<T>> = []
  #readyHead = 0
  #depth = 0
  #running = 0
  #scheduled = false
  #idle: Array<() => void> = []

  constructor(options: UserQueueOptions<T>) {
    if (!(options.capacity >= 1) || !(options.concurrency >= 1)) throw new RangeError('UserQueue: capacity and concurrency must be at least 1')
    this.#o = options
    this.capacity = options.capacity
    this.concurrency = options.concurrency
    this.#turn = options.turn ?? 32
    this.#tick = options.tick ?? 256
  }

  /** Jobs waiting to run. */
  get depth(): number {
    return this.#depth
  }

  /** Lanes (users) running now. */
  get running(): number {
    return this.#running
  }

  /** Queues every job, or none when they do not all fit (then returns false). */
  offer(jobs: readonly T[]): boolean {
    if (this.#depth + jobs.length > this.capacity) return false
    for (const job of jobs) {
      const key = this.#o.key(job)
      let lane = this.#lanes.get(key)
      if (lane === undefined) {
        lane = { key, jobs: [], head: 0, running: false, ready: false }
        this.#lanes.set(key, lane)
      }
      lane.jobs.push(job)
      if (!lane.running && !lane.ready) this.#makeReady(lane)
    }
    this.#depth += jobs.length
    this.#schedule()
    return true
  }

  /** Resolves once nothing is waiting or running. */
  idle(): Promise<void> {
    if (this.#depth === 0 && this.#running === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  #makeReady(lane: Lane<T>): void {
    lane.ready = true
    this.#ready.push(lane)
  }

  #schedule(): void {
    if (this.#scheduled || this.#readyHead === this.#ready.length) return
    this.#scheduled = true
    setImmediate(this.#runTick)
  }

  readonly #runTick = (): void => {
    this.#scheduled = false
    let budget = this.#tick
    while (this.#running < this.concurrency && this.#readyHead < this.#ready.length) {
      if (budget <= 0) {
        this.#schedule()
        return
      }
      const lane = this.#ready[this.#readyHead]!
      this.#ready[this.#readyHead++] = undefined as unknown as Lane<T>
      if (this.#readyHead === this.#ready.length) {
        this.#ready = []
        this.#readyHead = 0
      } else if (this.#readyHead >= 1024 && this.#readyHead * 2 >= this.#ready.length) {
        this.#ready = this.#ready.slice(this.#readyHead)
        this.#readyHead = 0
      }
      lane.ready = false
      lane.running = true
      this.#running++
      budget -= this.#runLane(lane, this.#turn)
    }
  }

  /** Runs up to `left` jobs of the lane; returns how many ran synchronously. */
  #runLane(lane: Lane<T>, left: number): number {
    let n = 0
    while (left > 0 && lane.head < lane.jobs.length) {
      const job = lane.jobs[lane.head]!
      lane.jobs[lane.head++] = undefined as unknown as T
      this.#depth--
      left--
      n++
      let r: void | Promise<void>
      try {
        r = this.#o.run(job)
      } catch (err) {
        this.#o.onError(job, err)
        continue
      }
      if (r instanceof Promise) {
        const rest = left
        r.catch((err: unknown) => this.#o.onError(job, err)).then(() => {
          this.#runLane(lane, rest)
        })
        return n
      }
    }
    this.#release(lane)
    return n
  }

  #release(lane: Lane<T>): void {
    lane.running = false
    this.#running--
    if (lane.head === lane.jobs.length) {
      lane.jobs = []
      lane.head = 0
      this.#lanes.delete(lane.key)
    } else {
      if (lane.head >= 1024) {
        lane.jobs = lane.jobs.slice(lane.head)
        lane.head = 0
      }
      this.#makeReady(lane)
    }
    this.#schedule()
    if (this.#depth === 0 && this.#running === 0 && this.#idle.length > 0) {
      const idle = this.#idle
      this.#idle = []
      for (const resolve of idle) resolve()
    }
  }
}
