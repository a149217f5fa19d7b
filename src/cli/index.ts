// The command table. Each command lives in its own file and is imported only
// when it runs, so `dovepush --help` loads no Lua engine.

import { cac } from 'cac'
import { isDovepushError } from '../errors.js'
import { type FlagSpec, RUN_FLAGS } from './run-flags.js'

export async function main(argv: string[]): Promise<void> {
  const cli = cac('dovepush')
  const run = cli.command('run <script>', 'Run a Dovecot push-notification Lua script on transactions (NDJSON)')
  for (const f of Object.values(RUN_FLAGS) as FlagSpec[]) run.option(f.flag, f.help, f.default !== undefined ? { default: f.default } : undefined)
  run.example('dovepush run lua-scripts/log-events.lua --events fixtures/events/sample.ndjson')
  run.action(async (script: string, flags: Record<string, unknown>) => {
    const { runCommand } = await import('./run.js')
    process.exitCode = await runCommand(script, flags)
  })
  cli.help()
  cli.version(await packageVersion())
  try {
    cli.parse(argv, { run: false })
    if (!cli.matchedCommand && !cli.options.help && !cli.options.version) {
      if (cli.args.length > 0) throw new Error(`unknown command "${cli.args[0]}" (try: dovepush --help)`)
      cli.outputHelp()
      process.exitCode = 2
      return
    }
    await cli.runMatchedCommand()
  } catch (err) {
    if (isDovepushError(err)) process.stderr.write(`dovepush: ${err.code}: ${err.message}\n`)
    else if (err instanceof Error && err.name === 'CACError') process.stderr.write(`dovepush: ${err.message}\n`)
    else if (err instanceof Error && !err.stack?.includes('/src/')) process.stderr.write(`dovepush: ${err.message}\n`)
    else process.stderr.write(`dovepush: ${err instanceof Error ? err.stack : String(err)}\n`)
    process.exitCode ??= 2
    if (process.exitCode === 0) process.exitCode = 2
  }
}

async function packageVersion(): Promise<string> {
  const { readFileSync } = await import('node:fs')
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}
