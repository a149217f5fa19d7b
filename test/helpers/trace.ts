// Lua scripts that record what they saw: a `trace(s)` prelude appending
// lines to a temp file the test reads back.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll } from 'vitest'

export interface Traced {
  /** The script: the prelude lines, then the body. */
  source: string
  /** The lines traced so far ([] when nothing was traced). */
  read: () => string[]
}

/** Extra prelude lines: `keys(t)` lists sorted keys; `r(...)` renders its arguments (e.g. a pcall result) space-separated. */
export const KEYS_AND_R = [
  'local function keys(t) local r = {} for k in pairs(t) do r[#r+1] = tostring(k) end table.sort(r) return table.concat(r, ",") end',
  'local function r(...) local t = table.pack(...) for i = 1, t.n do t[i] = tostring(t[i]) end return table.concat(t, " ") end',
]

/** Makes a temp dir `<prefix>XXXXXX` (removed after the file's tests) and returns `withTrace(body)`, which prefixes body with the trace prelude and `extra` lines. */
export function traceScripts(prefix: string, extra: readonly string[] = []): (body: string) => Traced {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  let n = 0
  return (body) => {
    const file = join(dir, `trace-${++n}.txt`)
    const trace = `local function trace(s) local f = assert(io.open(${JSON.stringify(file)}, "a")); f:write(s, "\\n"); f:close() end`
    const source = [trace, ...extra, body].join('\n')
    return {
      source,
      read: () => {
        try {
          return readFileSync(file, 'utf8').split('\n').filter(Boolean)
        } catch {
          return []
        }
      },
    }
  }
}

/** The 1-based line of the first line of `source` containing `marker`. */
export function lineOf(source: string, marker: string): number {
  const i = source.split('\n').findIndex((l) => l.includes(marker))
  if (i < 0) throw new Error(`marker not found: ${marker}`)
  return i + 1
}
