// The public API of the `dovepush` package: named re-exports only.

export { Host, type HostOptions } from './host/host.js'
export { RunStats, type ErrorKind } from './host/stats.js'
export type { Driver, DriverContext, DriverFactory } from './host/driver.js'
export { createLuaHost, LuaDriver, luaDrivers, type LuaDriversOptions } from './drivers/lua.js'
export { createEngine, ENGINE_NAMES, type EngineName, type LuaEngine, type LuaApi, type LuaThread, type HostFunction } from './lua/engine.js'
export { DOVECOT_VERSIONS, type DovecotVersion } from './lua/env.js'
export { readTransactions, readTransactionBatches, type NdjsonItem } from './events/ndjson-reader.js'
export { parseTransaction, parseEvent } from './events/validate.js'
export {
  EVENT_NAMES,
  eventFunctionName,
  transactionsOf,
  type EventName,
  type PushEvent,
  type Transaction,
  type TransactionGroup,
  type TransactionUnit,
} from './events/types.js'
export { loadSettingsFile, parseSetting, type Settings } from './config/settings.js'
export { createLogger, type LoggerOptions, type LogFormat, type LogLevel } from './log/logger.js'
export { DovepushError, InputError, InvalidArgumentError, ScriptLoadError, isDovepushError } from './errors.js'
