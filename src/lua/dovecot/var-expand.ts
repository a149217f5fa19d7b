// user:var_expand templates, Dovecot 2.3 syntax (src/lib/var-expand.c,
// mail_user_var_expand_table in src/lib-storage/mail-user.c).
//
// 2.3 rules: `%x` short and `%{name}` long variables; modifiers L U E X R T D
// M H N before the key; `%[-]w` width and `%o.w` offset/width applied after
// the modifiers; `%%` is a literal percent. An unknown variable is not an
// error: it expands to UNSUPPORTED_VARIABLE_<key> and var_expand still
// succeeds, so the Lua binding returns that text (it raises only on
// failures such as a broken hash option).
//
// 2.4 rules (`--dovecot 2.4`): `%{name}` and `%{name | filter}` with the
// filters lower, upper, default("x"); anything else raises, as 2.4 does for
// unknown variables. This covers what push scripts use; the full 2.4
// language (arithmetic, hashing filters) is not reproduced.

import { createHash } from 'node:crypto'

export interface VarExpandUser {
  readonly username: string
  readonly home: string | undefined
  readonly service: string
  readonly sessionId: string
  readonly uid: number
  readonly gid: number
  readonly pid: number
  readonly hostname: string
  readonly userdb: (field: string) => string | undefined
  readonly env: (name: string) => string | undefined
}

/** The variables of mail_user_var_expand_table: [short key or '', long name, value]. */
function variables(u: VarExpandUser): Array<[string, string, string]> {
  const at = u.username.indexOf('@')
  const local = at < 0 ? u.username : u.username.slice(0, at)
  const domain = at < 0 ? '' : u.username.slice(at + 1)
  return [
    ['u', 'user', u.username],
    ['n', 'username', local],
    ['d', 'domain', domain],
    ['s', 'service', u.service],
    ['h', 'home', u.home ?? ''],
    ['l', 'lip', ''],
    ['r', 'rip', ''],
    ['p', 'pid', String(u.pid)],
    ['i', 'uid', String(u.uid)],
    ['', 'gid', String(u.gid)],
    ['', 'session', u.sessionId],
    ['', 'auth_user', u.username],
    ['', 'auth_username', local],
    ['', 'auth_domain', domain],
    ['', 'hostname', u.hostname],
    ['', 'local_ip', ''],
    ['', 'remote_ip', ''],
  ]
}

function strHash(s: string): number {
  // str_hash in src/lib/hash.c (the ASU/glib string hash)
  let h = 0
  for (const c of Buffer.from(s)) {
    h = ((h << 4) + c) >>> 0
    const g = h & 0xf0000000
    if (g !== 0) {
      h ^= g >>> 24
      h ^= g
      h >>>= 0
    }
  }
  return h
}

function applyModifier(mod: string, value: string, width: number, offset: number): string {
  switch (mod) {
    case 'L': return value.toLowerCase()
    case 'U': return value.toUpperCase()
    case 'E': return value.replace(/[\\"']/g, (c) => '\\' + c)
    case 'X': return /^\d+$/.test(value) ? BigInt(value).toString(16) : '0'
    case 'R': return Buffer.from(value).reverse().toString()
    case 'T': return value.replace(/\s+$/, '')
    case 'D': return value.replace(/\./g, ',dc=')
    case 'M': return createHash('md5').update(value).digest('hex')
    case 'H':
    case 'N': {
      let n = mod === 'H' ? strHash(value) : Number(createHash('md5').update(value).digest().readBigUInt64BE(0) & 0xffffffffn)
      if (width !== 0) n %= width
      return n.toString(16).padStart(offset, '0')
    }
    default: return value
  }
}

/** Expands a 2.3 template for the user. */
export function varExpand23(template: string, user: VarExpandUser): string {
  const vars = variables(user)
  let out = ''
  for (let i = 0; i < template.length; i++) {
    const c = template[i]!
    if (c !== '%') {
      out += c
      continue
    }
    i++
    if (i >= template.length) break // a trailing '%' is dropped
    if (template[i] === '%') {
      out += '%'
      continue
    }
    // [-][0]width[.[-]offset-width]
    const m = /^(-?)(0?)(\d*)(?:\.(-?)(\d*))?/.exec(template.slice(i))!
    i += m[0].length
    let width = m[3] ? Number(m[3]) * (m[1] ? -1 : 1) : 0
    let offset = 0
    const zeroPad = m[2] === '0' && m[5] === undefined
    if (m[5] !== undefined) {
      offset = width
      width = m[5] ? Number(m[5]) * (m[4] ? -1 : 1) : 0
    }
    const mods: string[] = []
    while (i < template.length && 'LUEXRHNMDT'.includes(template[i]!) && mods.length < 10) mods.push(template[i++]!)
    if (i >= template.length) break
    let key: string
    let long = false
    if (template[i] === '{' && template.indexOf('}', i) > 0) {
      const end = template.indexOf('}', i)
      key = template.slice(i + 1, end)
      i = end
      long = true
    } else {
      key = template[i]!
    }
    let value: string | undefined
    const entry = vars.find(([s, l]) => (long ? l === key : s === key))
    if (entry !== undefined) value = entry[2]
    else if (long && key.startsWith('userdb:')) {
      const [, field = '', def = ''] = key.split(':')
      value = user.userdb(field) ?? def
    } else if (long && key.startsWith('env:')) value = user.env(key.slice(4)) ?? ''
    if (value === undefined) {
      out += `UNSUPPORTED_VARIABLE_${long ? key.split(':')[0] : key}`
      continue
    }
    for (const mod of mods) value = applyModifier(mod, value, width, offset)
    if (mods.includes('H') || mods.includes('N')) {
      out += value
      continue
    }
    if (zeroPad && width > 0) {
      out += value.padStart(width, '0')
      continue
    }
    const bytes = [...value]
    let start = offset < 0 ? Math.max(0, bytes.length + offset) : Math.min(offset, bytes.length)
    let len = bytes.length - start
    if (width > 0) len = Math.min(width, len)
    else if (width < 0) len = Math.max(0, len + width)
    out += bytes.slice(start, start + len).join('')
    start = 0
  }
  return out
}

/** Expands a 2.4 template; throws an Error with Dovecot-like text on unknown variables. */
export function varExpand24(template: string, user: VarExpandUser): string {
  const vars = new Map(variables(user).map(([, l, v]) => [l, v]))
  return template.replace(/%\{([^}]*)\}|%%/g, (_whole, body: string | undefined) => {
    if (body === undefined) return '%'
    const [name = '', ...filters] = body.split('|').map((s) => s.trim())
    let value = vars.get(name)
    if (value === undefined) throw new Error(`Unknown variable '${name}'`)
    for (const f of filters) {
      const def = /^default\("(.*)"\)$/.exec(f)
      if (f === 'lower') value = value.toLowerCase()
      else if (f === 'upper') value = value.toUpperCase()
      else if (def) value = value === '' ? def[1]! : value
      else throw new Error(`Unknown filter '${f}'`)
    }
    return value
  })
}
