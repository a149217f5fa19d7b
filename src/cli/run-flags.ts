// The flags of `dovepush run` and `dovepush serve`: one table each, the
// single source for --help and the README's flag lists.

export interface FlagSpec {
  readonly flag: string
  readonly help: string
  readonly default?: string | number | boolean
}

export const RUN_FLAGS = {
  events: { flag: '--events <file>', help: 'NDJSON transactions to replay, "-" for stdin (default: stdin)' },
  set: { flag: '--set <key=value>', help: 'A plugin setting seen by user:plugin_getenv (repeatable)' },
  settings: { flag: '--settings <file>', help: 'YAML/JSON file of settings (plugin keys, mail_home, mail_uid, mail_gid, mail_debug)' },
  user: { flag: '--user <name>', help: 'User of bare-event lines and of transactions without "user"', default: 'user@example.test' },
  service: { flag: '--service <name>', help: 'user.service when a transaction names none', default: 'imap' },
  engine: { flag: '--engine <name>', help: 'Lua engine: wasmoon (Lua 5.4, as Debian 12) or fengari (Lua 5.3, 32-bit integers)', default: 'wasmoon' },
  dovecot: { flag: '--dovecot <version>', help: 'Dovecot behaviour to imitate: 2.3 (Debian 12, 2.3.19.1) or 2.4', default: '2.3' },
  callTimeout: { flag: '--call-timeout <ms>', help: 'Stop a script call whose Lua code runs longer than this (0 = never)', default: 5000 },
  memoryLimit: { flag: '--memory-limit <mb>', help: 'Memory cap per Lua state in MiB (0 = none; wasmoon only)', default: 256 },
  fullGc: { flag: '--full-gc <when>', help: 'The full garbage collection after each transaction: observable (from when the script could see it) or always (as Dovecot)', default: 'observable' },
  http: { flag: '--http <mode>', help: 'real: requests reach the network; capture: they go to a built-in local sink that records them', default: 'real' },
  httpLog: { flag: '--http-log <file>', help: 'With --http capture: write the captured requests as NDJSON' },
  strict: { flag: '--strict', help: 'Stop at the first bad input line instead of skipping it' },
  logFormat: { flag: '--log-format <format>', help: 'pretty or json (default: pretty on a terminal, json otherwise)' },
  logLevel: { flag: '--log-level <level>', help: 'debug, info, warn or error', default: 'info' },
  progress: { flag: '--progress', help: 'Show progress on stderr (default: when stderr is a terminal)' },
} as const satisfies Record<string, FlagSpec>

const { set, settings, user, service, engine, dovecot, callTimeout, memoryLimit, fullGc, http, logFormat, logLevel } = RUN_FLAGS

/** `dovepush serve`: its own flags, then run's script flags. */
export const SERVE_FLAGS = {
  listen: { flag: '--listen <host:port>', help: 'Address to listen on; a non-loopback one needs --token-file or --insecure-no-auth', default: '127.0.0.1:8025' },
  tokenFile: { flag: '--token-file <file>', help: 'Require "Authorization: Bearer <token>" (all but GET /healthz); the token is the first line of the file, read once at start' },
  insecureNoAuth: { flag: '--insecure-no-auth', help: 'Allow a non-loopback --listen without --token-file' },
  concurrency: { flag: '--concurrency <n>', help: 'Users whose transactions run at the same time (each user\'s run in order)', default: 32 },
  queueSize: { flag: '--queue-size <n>', help: 'Transactions waiting to run; when full, POSTs get 503 with Retry-After', default: 10000 },
  maxBody: { flag: '--max-body <bytes>', help: 'Largest request body (suffix k or m for KiB, MiB)', default: '1m' },
  sessionIdle: { flag: '--session-idle <seconds>', help: 'End a session (script_deinit) no transaction has used for this long, as Dovecot ends one when its user leaves (0 = only at shutdown, or beyond 1000 live sessions)', default: 0 },
  set,
  settings,
  user,
  service,
  engine,
  dovecot,
  callTimeout,
  memoryLimit,
  fullGc,
  http,
  logFormat,
  logLevel,
} as const satisfies Record<string, FlagSpec>
