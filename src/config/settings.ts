// dovepush settings: Dovecot's plugin {} settings and the few mail settings
// that shape the user object, from a YAML/JSON file and `--set KEY=VALUE`.
//
// One flat namespace, as people write them in dovecot.conf's plugin block:
// `user:plugin_getenv(key)` sees every key (2.3); 2.4's script_init(settings)
// gets them as `lua_settings`. These keys also fill the user object:
//   mail_home  → user.home (expanded with %u %n %d), nil when unset
//   mail_uid / mail_gid → user.uid / user.gid (numbers; default: this process's)
//   mail_debug → user.mail_debug (yes/no), and event:log_debug output

import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { InvalidArgumentError } from '../errors.js'

export type Settings = Readonly<Record<string, string>>

/** Reads a YAML or JSON mapping of setting names to scalar values. */
export function loadSettingsFile(path: string): Settings {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new InvalidArgumentError(`--settings ${path}: cannot read: ${(err as Error).message}`, { cause: err })
  }
  let doc: unknown
  try {
    doc = parse(text)
  } catch (err) {
    throw new InvalidArgumentError(`--settings ${path}: not valid YAML/JSON: ${(err as Error).message}`, { cause: err })
  }
  if (doc === null || doc === undefined) return {}
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new InvalidArgumentError(`--settings ${path}: expected a mapping of setting names to values`)
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(doc)) {
    if (typeof v === 'string') out[k] = v
    else if (typeof v === 'number' || typeof v === 'boolean') out[k] = typeof v === 'boolean' ? (v ? 'yes' : 'no') : String(v)
    else throw new InvalidArgumentError(`--settings ${path}: ${k}: expected a string, number or boolean, got ${v === null ? 'null' : typeof v}`)
  }
  return out
}

/** Parses `--set KEY=VALUE`. */
export function parseSetting(arg: string): [string, string] {
  const eq = arg.indexOf('=')
  if (eq <= 0) throw new InvalidArgumentError(`--set ${arg}: expected KEY=VALUE`)
  return [arg.slice(0, eq), arg.slice(eq + 1)]
}

/** Dovecot's boolean settings: yes/no (also true/false, 1/0). */
export function settingIsTrue(v: string | undefined): boolean {
  return v !== undefined && /^(yes|y|true|1|on)$/i.test(v.trim())
}
