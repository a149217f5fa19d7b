// Streams transactions out of NDJSON, chunk by chunk (constant memory
// whatever the input size). A bad line is yielded as an error naming its line
// number and field; the reader goes on with the next line.

import type { Readable } from 'node:stream'
import { InputError } from '../errors.js'
import type { TransactionUnit } from './types.js'
import { parseTransaction, type TransactionDefaults } from './validate.js'

export type NdjsonItem = { line: number; txn: TransactionUnit; error?: undefined } | { line: number; error: InputError; txn?: undefined }

/**
 * The items of each chunk of input, as one array per chunk: the per-line
 * path stays synchronous (an async step per line cost more than parsing it).
 */
export async function* readTransactionBatches(input: Readable, defaults: TransactionDefaults): AsyncGenerator<NdjsonItem[]> {
  const decoder = new TextDecoder()
  let rest = ''
  let line = 0
  const parse = (text: string, batch: NdjsonItem[]): void => {
    line++
    if (text.trim() !== '') batch.push(parseLine(text, line, defaults))
  }
  for await (const chunk of input) {
    const text = rest + (typeof chunk === 'string' ? chunk : decoder.decode(chunk as Uint8Array, { stream: true }))
    const batch: NdjsonItem[] = []
    let start = 0
    let nl: number
    while ((nl = text.indexOf('\n', start)) >= 0) {
      parse(text.slice(start, nl > start && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl), batch)
      start = nl + 1
    }
    rest = text.slice(start)
    if (batch.length > 0) yield batch
  }
  rest += decoder.decode()
  if (rest !== '') {
    const batch: NdjsonItem[] = []
    parse(rest.endsWith('\r') ? rest.slice(0, -1) : rest, batch)
    if (batch.length > 0) yield batch
  }
}

/** The items one by one (convenient where speed does not matter). */
export async function* readTransactions(input: Readable, defaults: TransactionDefaults): AsyncGenerator<NdjsonItem> {
  for await (const batch of readTransactionBatches(input, defaults)) yield* batch
}

function parseLine(text: string, line: number, defaults: TransactionDefaults): NdjsonItem {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    return { line, error: new InputError(`malformed JSON: ${(err as Error).message}`, { line }, { cause: err }) }
  }
  try {
    return { line, txn: parseTransaction(value, defaults) }
  } catch (err) {
    if (!(err instanceof InputError)) throw err
    return { line, error: new InputError(err.detail, { line, ...(err.field ? { field: err.field } : {}) }) }
  }
}
