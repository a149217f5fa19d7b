// Streams transactions out of NDJSON, one line at a time (constant memory
// whatever the input size). A bad line is yielded as an error naming its line
// number and field; the reader goes on with the next line.

import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { InputError } from '../errors.js'
import type { TransactionUnit } from './types.js'
import { parseTransaction, type TransactionDefaults } from './validate.js'

export type NdjsonItem = { line: number; txn: TransactionUnit; error?: undefined } | { line: number; error: InputError; txn?: undefined }

export async function* readTransactions(input: Readable, defaults: TransactionDefaults): AsyncGenerator<NdjsonItem> {
  const lines = createInterface({ input, crlfDelay: Infinity })
  let line = 0
  for await (const text of lines) {
    line++
    if (text.trim() === '') continue
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch (err) {
      yield { line, error: new InputError(`malformed JSON: ${(err as Error).message}`, { line }, { cause: err }) }
      continue
    }
    try {
      yield { line, txn: parseTransaction(value, defaults) }
    } catch (err) {
      if (!(err instanceof InputError)) throw err
      yield { line, error: new InputError(err.detail, { line, ...(err.field ? { field: err.field } : {}) }) }
    }
  }
}
