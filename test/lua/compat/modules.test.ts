// Built-in modules come after the Lua files on package.path: a copy on disk wins.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { luaSourceModule, registerBuiltinModules } from '../../../src/lua/compat/modules.js'
import { createEnvironment } from '../../../src/lua/environment.js'
import { engine } from '../../helpers/run-script.js'

for (const engineName of ['wasmoon', 'fengari'] as const) {
  describe(`built-in modules (${engineName})`, () => {
    it('are found by require, after a module of the same name on package.path', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'dovepush-builtin-'))
      try {
        const env = createEnvironment({ engine: await engine(engineName), scriptPath: join(dir, 'x.lua'), dovecot: '2.3', log: pino({ level: 'silent' }), debug: false, callTimeoutMs: 0, memoryLimit: 0 })
        registerBuiltinModules(env, { 'demo.mod': luaSourceModule('demo.mod', 'return { where = "built-in", arg = ... }'), ondisk: luaSourceModule('ondisk', 'return "built-in"') })
        writeFileSync(join(dir, 'ondisk.lua'), 'return "disk"')
        const { api, L } = env
        const src = 'local m = require("demo.mod"); local ok, err = pcall(require, "nope.none"); return m.where .. "|" .. m.arg .. "|" .. require("ondisk") .. "|" .. err'
        expect(api.load(L, new TextEncoder().encode(src), '=t', 't')).toBe(0)
        expect(api.pcall(L, 0, 1, 0)).toBe(0)
        const [where, arg, disk, err] = (api.tostring(L, -1) ?? '').split('|')
        expect([where, arg, disk]).toEqual(['built-in', 'demo.mod', 'disk'])
        expect(err).toContain("module 'nope.none' not found:")
        expect(err).toContain("\n\tno built-in module 'nope.none' in dovepush")
        expect(err).toContain(`\n\tno file '${dir}/nope/none.lua'`)
        api.close()
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  })
}
