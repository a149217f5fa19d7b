// The list of built-in modules, by the name scripts `require`.

import { cjson, cjsonSafe } from './cjson.js'
import { ltn12 } from './ltn12.js'
import type { BuiltinModule } from './modules.js'
import { socketHttp } from './socket-http.js'
import { socketUrl } from './socket-url.js'

export const BUILTIN_MODULES: Readonly<Record<string, BuiltinModule>> = {
  cjson,
  'cjson.safe': cjsonSafe,
  'socket.http': socketHttp,
  'socket.url': socketUrl,
  'ssl.https': socketHttp,
  ltn12: ltn12,
}
