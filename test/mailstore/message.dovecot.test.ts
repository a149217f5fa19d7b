// parseMessage against the fields a real Dovecot gave for 196 messages.
//
// How fixtures/messages/dovecot-2.3.19-fields.json was made: the messages (one per rule of
// src/mailstore/message.ts and its edge cases: addresses, encoded words, dates, MIME
// structure, charsets, transfer encodings, HTML, snippets) were delivered with dovecot-lda to
// a real Dovecot 2.3.19.1 from the Debian 12 packages (dovecot-core
// 1:2.3.19.1+dfsg1-2.1+deb12u7), whose push-notification Lua driver ran a script that dumped
// each MessageNew event's fields. Each case is { name, eml, fields }; eml and any field that
// is not valid UTF-8 are stored as { base64 }. test/mailstore/tools/record-dovecot-fields.mjs
// re-records the fields (needs root and the Debian package; see its comment).

import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { type MessageFields, parseMessage } from '../../src/mailstore/message.js'

type Bytes = string | { readonly base64: string }

interface Case {
  readonly name: string
  readonly eml: Bytes
  readonly fields: Readonly<Record<keyof MessageFields, Bytes | number | null>>
}

const cases = JSON.parse(readFileSync(new URL('../../fixtures/messages/dovecot-2.3.19-fields.json', import.meta.url), 'utf8')) as Case[]

const bytes = (v: Bytes): Buffer => (typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v.base64, 'base64'))

/** Where parseMessage knowingly differs from Dovecot: the case, the fields with what dovepush gives instead, and why. */
const DIVERGENCES: Readonly<Record<string, { readonly reason: string; readonly fields: Partial<MessageFields> }>> = {
  'raw-8bit': {
    reason:
      'Dovecot hands Lua the raw 8-bit bytes of From and To (here latin1); dovepush gives strings, ' +
      'so they are read as UTF-8 with one U+FFFD per invalid run (decided in message.ts)',
    fields: { from: 'J\uFFFDrgen <j@example.org>', to: '"M\uFFFDller" <m@x.test>' },
  },
}

/** The recorded fields as parseMessage returns them: nil → undefined, divergences applied. */
function expected(c: Case): MessageFields {
  const fields = Object.fromEntries(Object.entries(c.fields).map(([k, v]) => [k, v ?? undefined]))
  return { ...fields, ...DIVERGENCES[c.name]?.fields } as MessageFields
}

describe('parseMessage gives the fields Dovecot 2.3.19.1 gave', () => {
  it.each(cases)('$name', (c) => {
    expect(parseMessage(bytes(c.eml))).toStrictEqual(expected(c))
  })

  it('lists as divergences exactly the fields where Dovecot gave bytes that are not UTF-8', () => {
    const raw = cases.flatMap((c) => Object.entries(c.fields).flatMap(([k, v]) => (v !== null && typeof v === 'object' ? [`${c.name}.${k}`] : [])))
    const listed = Object.entries(DIVERGENCES).flatMap(([name, d]) => Object.keys(d.fields).map((k) => `${name}.${k}`))
    expect(listed.sort()).toEqual(raw.sort())
  })
})
