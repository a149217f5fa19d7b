// The list of built-in modules, by the name scripts `require`.

import type { BuiltinModule } from './modules.js'

export const BUILTIN_MODULES: Readonly<Record<string, BuiltinModule>> = {}
