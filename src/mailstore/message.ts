// STUB — being written by a helper: RFC 5322 message → the MessageNew /
// MessageAppend fields the way Dovecot 2.3.19 takes them (spec §2.3).

/** The content fields of MessageNew/MessageAppend (spec §2.3); absent = nil in Lua. */
export interface MessageFields {
  readonly from: string
  readonly from_address: string
  readonly from_display_name: string
  readonly to: string
  readonly to_address: string
  readonly to_display_name: string
  readonly subject: string | undefined
  readonly date: number
  readonly tz: number
  readonly snippet: string | undefined
  readonly message_id: string | undefined
}

/** A message given as a few fields; composeMessage builds the .eml. */
export interface SimpleMessage {
  readonly from?: string
  readonly to?: string | readonly string[]
  readonly subject?: string
  /** RFC 5322 date text, or a Date. Default: none (Date header omitted). */
  readonly date?: string | Date
  readonly messageId?: string
  /** text/plain body. */
  readonly body?: string
  /** text/html body (alone: an HTML-only message; with body: multipart/alternative). */
  readonly html?: string
  /** Extra headers, added as given. */
  readonly headers?: Readonly<Record<string, string>>
}

/** Reads the fields from a message as received (bytes, or a string of its characters). */
export function parseMessage(eml: string | Uint8Array): MessageFields {
  void eml
  throw new Error('parseMessage: not written yet')
}

export function composeMessage(m: SimpleMessage): string {
  void m
  throw new Error('composeMessage: not written yet')
}
