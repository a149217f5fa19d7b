// Base64, after Dovecot 2.3.19.1 src/lib/base64.c (base64_decode_more), with Node's Buffer
// doing the decoding. Part of ../message.ts (see its top comment).

import type { Bytes } from './unichar.js'

/** base64_decode_more: whitespace is skipped; decoding stops at any other non-base64 byte or the padding. */
export function base64Decode(s: Bytes): Bytes {
  const valid = /^[A-Za-z0-9+/ \t\r\n]*/.exec(s)?.[0] ?? ''
  return Buffer.from(valid, 'base64').toString('latin1')
}
