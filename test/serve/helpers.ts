// Helpers of the `dovepush serve` tests: a server on 127.0.0.1:0 running a
// Lua source, its JSON log lines, and plain undici requests to it.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { createLogger } from '../../src/log/logger.js'
import { type ServeHandle, type ServeOptions, startServe } from '../../src/serve/server.js'

export interface LogLine {
  level: number
  msg: string
  [k: string]: unknown
}

export interface Served {
  handle: ServeHandle
  url: string
  logs: LogLine[]
  scriptPath: string
  close(): Promise<void>
}

/** Starts `dovepush serve` in-process on a Lua source (written to a temp file). */
export async function serveSource(source: string, o: Partial<ServeOptions> = {}): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'dovepush-serve-'))
  const scriptPath = join(dir, 'script.lua')
  writeFileSync(scriptPath, source)
  const logs: LogLine[] = []
  const log = createLogger({ format: 'json', level: 'debug', destination: { write: (s: string) => void logs.push(JSON.parse(s) as LogLine) } })
  const handle = await startServe({ script: scriptPath, host: '127.0.0.1', port: 0, memoryLimit: 64 * 1024 * 1024, log, ...o })
  return {
    handle,
    url: handle.url,
    logs,
    scriptPath,
    close: async () => {
      await handle.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

export interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  json: any // eslint-disable-line @typescript-eslint/no-explicit-any
}

export async function call(url: string, o: { method?: string; body?: string | Iterable<Buffer> | AsyncIterable<Buffer>; headers?: Record<string, string> } = {}): Promise<Reply> {
  const res = await request(url, {
    method: (o.method ?? (o.body !== undefined ? 'POST' : 'GET')) as 'GET',
    ...(o.body !== undefined ? { body: o.body as string } : {}),
    headers: o.headers ?? {},
  })
  const text = await res.body.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.statusCode, headers: res.headers, text, json }
}

export const post = (base: string, body: string, headers: Record<string, string> = {}, query = ''): Promise<Reply> =>
  call(`${base}/v1/transactions${query}`, { method: 'POST', body, headers })

/** A one-event MessageNew transaction line. */
export function tx(user: string, uid: number | string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ user, events: [{ name: 'MessageNew', mailbox: 'INBOX', uid }], ...extra })
}

export async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 5))
  }
}
