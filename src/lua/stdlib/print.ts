// print(): under Dovecot it writes to the mail process's stdout, which is
// /dev/null under the master process (spec §8), so people never see it.
// dovepush sends it to the log instead, at info level, tagged print.

import type { LuaEnv } from '../env.js'

export function registerPrint(env: LuaEnv): void {
  const { api, L } = env
  api.pushfunction(L, (PL) => {
    const n = api.gettop(PL)
    const parts: string[] = []
    for (let i = 1; i <= n; i++) parts.push(api.tostringmeta(PL, i))
    env.log.info({ source: 'print' }, parts.join('\t'))
    return 0
  }, 'print')
  api.setglobal(L, 'print')
}
