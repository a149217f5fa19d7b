// The package's public surface: a change to it shows up here (vitest's exports test idea).

import { expect, it } from 'vitest'
import * as dovepush from '../src/index.js'

it('exports exactly these names', () => {
  expect(Object.fromEntries(Object.entries(dovepush).map(([k, v]) => [k, typeof v])).valueOf()).toEqual({
    DOVECOT_VERSIONS: 'object',
    DovepushError: 'function',
    ENGINE_NAMES: 'object',
    EVENT_NAMES: 'object',
    Host: 'function',
    InputError: 'function',
    InvalidArgumentError: 'function',
    LuaDriver: 'function',
    RunStats: 'function',
    ScriptLoadError: 'function',
    createEngine: 'function',
    createLuaHost: 'function',
    createLogger: 'function',
    eventFunctionName: 'function',
    isDovepushError: 'function',
    loadSettingsFile: 'function',
    luaDrivers: 'function',
    parseEvent: 'function',
    parseSetting: 'function',
    parseTransaction: 'function',
    readTransactionBatches: 'function',
    readTransactions: 'function',
    transactionsOf: 'function',
  })
})
