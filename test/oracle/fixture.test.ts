// The oracle fixture (fixtures/oracle/dovecot-2.3.19.transactions.ndjson) is
// the real recording turned into dovepush input. This test keeps the two in
// step; DOVEPUSH_UPDATE_FIXTURES=1 rewrites the fixture.

import { readFileSync, writeFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { readRecording, recordingToNdjson } from '../helpers/oracle.js'

const RECORDING = 'fixtures/oracle/dovecot-2.3.19.ndjson'
const FIXTURE = 'fixtures/oracle/dovecot-2.3.19.transactions.ndjson'

describe('oracle fixture', () => {
  it('is the recording converted to NDJSON transactions', () => {
    const lines = recordingToNdjson(readRecording(RECORDING))
    const text = lines.join('\n') + '\n'
    if (process.env.DOVEPUSH_UPDATE_FIXTURES === '1') writeFileSync(FIXTURE, text)
    expect(readFileSync(FIXTURE, 'utf8')).toBe(text)
    expect(lines).toHaveLength(24) // 26 begin_txn calls; MOVE's two share one line
    expect(lines.filter((l) => l.includes('"transactions"'))).toHaveLength(1)
  })
})
