// The command table. Each command lives in its own file and is imported only
// when it runs, so `dovepush --help` loads no Lua engine.

import { cac } from 'cac'
import { isDovepushError } from '../errors.js'
import { type FlagSpec, RUN_FLAGS } from './run-flags.js'

export async function main(argv: string[]): Promise<void> {
  const cli = cac('dovepush')
  const run = cli.command('run <script>', 'Run a Dovecot push-notification Lua script on transactions (NDJSON)')
  for (const f of Object.values(RUN_FLAGS) as FlagSpec[]) run.option(f.flag, f.help, f.default !== undefined ? { default: f.default } : undefined)
  run.option('--scenario <file>', 'Run one scenario file (YAML/JSON) with this script instead of --events, and report')
  run.example('dovepush run lua-scripts/log-events.lua --events fixtures/events/sample.ndjson')
  run.example('dovepush run lua-scripts/webhook.lua --scenario fixtures/scenarios/webhook.yaml')
  run.action(async (script: string, flags: Record<string, unknown>) => {
    const { runCommand } = await import('./run.js')
    // with --scenario, the scenario's `dovecot` wins over --dovecot's default (not over an explicit --dovecot)
    if (flags.scenario !== undefined && !argv.some((a) => /^--dovecot(=|$)/.test(a))) delete flags.dovecot
    process.exitCode = await runCommand(script, flags)
  })
  const test = cli.command('test [...paths]', `Run scenario files (*.yaml, *.yml, *.json; directories recursively, skipping "failing/"); default fixtures/scenarios`)
  test.option('--script <file>', "The Lua script for every scenario (wins over each scenario's script)")
  test.option('--engine <name>', 'Lua engine: wasmoon (Lua 5.4, as Debian 12) or fengari (Lua 5.3, 32-bit integers); default wasmoon')
  test.option('--dovecot <version>', "Dovecot behaviour to imitate: 2.3 or 2.4 (wins over each scenario's dovecot; default 2.3)")
  test.option('--junit <file>', 'Also write the results as JUnit XML')
  test.option('--verbose', "Print the scripts' log lines (stderr)")
  test.example('dovepush test')
  test.example('dovepush test fixtures/scenarios/failing --junit junit.xml')
  test.action(async (paths: string[], flags: Record<string, unknown>) => {
    const { testCommand } = await import('./test.js')
    process.exitCode = await testCommand(paths, flags)
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
