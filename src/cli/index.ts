// The command table. Each command lives in its own file and is imported only
// when it runs, so `dovepush --help` loads no Lua engine.

import { cac } from 'cac'
import { isDovepushError } from '../errors.js'
import { type FlagSpec, RUN_FLAGS, SERVE_FLAGS } from './run-flags.js'

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
  const serve = cli.command('serve <script>', 'Run a script as an HTTP service: POST /v1/transactions (JSON or NDJSON), GET /healthz, GET /metrics')
  for (const f of Object.values(SERVE_FLAGS) as FlagSpec[]) serve.option(f.flag, f.help, f.default !== undefined ? { default: f.default } : undefined)
  serve.example('dovepush serve lua-scripts/webhook.lua --set push_lua_url=http://127.0.0.1:8080/hook')
  serve.example('dovepush serve push.lua --listen 0.0.0.0:8025 --token-file /etc/dovepush/token --concurrency 64')
  serve.action(async (script: string, flags: Record<string, unknown>) => {
    const { serveCommand } = await import('./serve.js')
    process.exitCode = await serveCommand(script, flags)
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
  const forwarder = cli.command('forwarder', 'Print a Lua script that forwards a real Dovecot\'s push transactions to dovepush serve (--url) or an NDJSON file (--to-file)')
  forwarder.option('--url <url>', 'dovepush serve: http://IP:PORT (POSTs to /v1/transactions), or a full URL with a path (used as given)')
  forwarder.option('--token <token>', 'Bearer token for dovepush serve (embedded in the script: protect the file)')
  forwarder.option('--token-file <file>', 'Read the token from the first line of this file instead of --token')
  forwarder.option('--to-file <path>', 'Append one NDJSON line per transaction to this absolute path (must be writable by the mail user)')
  forwarder.option('--dovecot <version>', 'Dovecot the script will run in: 2.3, 2.4 or auto (detected at run time)', { default: 'auto' })
  forwarder.option('--timeout <ms>', 'Connect and request timeout of the single HTTP attempt', { default: 2000 })
  forwarder.option('--output <file>', 'Write the script to this file (created with mode 0600) instead of stdout')
  forwarder.example('dovepush forwarder --url http://192.0.2.10:8025 --token-file /etc/dovepush/token --output /etc/dovecot/dovepush-forwarder.lua')
  forwarder.example('dovepush forwarder --to-file /var/vmail/push-record.ndjson > /etc/dovecot/dovepush-forwarder.lua')
  forwarder.action(async (flags: Record<string, unknown>) => {
    const { forwarderCommand } = await import('./forwarder.js')
    process.exitCode = await forwarderCommand(flags, argv)
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
