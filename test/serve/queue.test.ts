// The serve queue: per-key FIFO, at most `concurrency` keys running, all or
// nothing when offered, turns shared between keys, I/O not starved.

import { describe, expect, it } from 'vitest'
import { UserQueue } from '../../src/serve/queue.js'

interface J { key: string; n: number; ms?: number }

function make(o: { capacity?: number; concurrency?: number; turn?: number; tick?: number }, onRun: (j: J) => void | Promise<void>): UserQueue<J> {
  return new UserQueue<J>({
    capacity: o.capacity ?? 1000,
    concurrency: o.concurrency ?? 4,
    key: (j) => j.key,
    run: onRun,
    onError: (j, err) => {
      throw new Error(`unexpected error in ${j.key}/${j.n}: ${String(err)}`)
    },
    ...(o.turn !== undefined ? { turn: o.turn } : {}),
    ...(o.tick !== undefined ? { tick: o.tick } : {}),
  })
}

describe('UserQueue', () => {
  it('runs each key in order, keys in parallel up to concurrency', async () => {
    const ran: J[] = []
    let live = 0
    let maxLive = 0
    const q = make({ concurrency: 3 }, async (j) => {
      live++
      maxLive = Math.max(maxLive, live)
      await new Promise((r) => setTimeout(r, j.ms))
      ran.push(j)
      live--
    })
    const jobs: J[] = []
    for (let n = 0; n < 10; n++) for (const key of ['a', 'b', 'c', 'd', 'e']) jobs.push({ key, n, ms: (n * 7 + key.charCodeAt(0)) % 4 })
    expect(q.offer(jobs)).toBe(true)
    expect(q.depth).toBe(50)
    await q.idle()
    expect(ran).toHaveLength(50)
    for (const key of ['a', 'b', 'c', 'd', 'e']) expect(ran.filter((j) => j.key === key).map((j) => j.n)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    expect(maxLive).toBe(3)
    expect(q.depth).toBe(0)
    expect(q.running).toBe(0)
  })

  it('takes an offer whole or not at all', () => {
    const q = make({ capacity: 3 }, () => {})
    expect(q.offer([{ key: 'a', n: 1 }, { key: 'a', n: 2 }])).toBe(true)
    expect(q.offer([{ key: 'b', n: 1 }, { key: 'b', n: 2 }])).toBe(false)
    expect(q.depth).toBe(2)
    expect(q.offer([{ key: 'b', n: 1 }])).toBe(true)
    expect(q.depth).toBe(3)
  })

  it('shares turns between keys and yields to timers during long synchronous runs', async () => {
    const order: string[] = []
    const q = make({ concurrency: 1, turn: 2, tick: 8 }, (j) => {
      order.push(j.key)
    })
    q.offer(Array.from({ length: 20 }, (_, n) => ({ key: 'a', n })))
    q.offer(Array.from({ length: 20 }, (_, n) => ({ key: 'b', n })))
    // an event-loop turn queued now runs after the first 8 synchronous jobs, not after all 40
    let otherRanAt = -1
    setImmediate(() => (otherRanAt = order.length))
    await q.idle()
    expect(order.slice(0, 8).join('')).toBe('aabbaabb')
    expect(otherRanAt).toBe(8)
    expect(order).toHaveLength(40)
  })
})
