// Every error class: its name, its stable code, its brand (undici's test/errors.js idea).

import { describe, expect, it } from 'vitest'
import { DovepushError, InputError, InvalidArgumentError, isDovepushError, ScriptLoadError } from '../src/errors.js'

describe('errors', () => {
  it.each([
    [new InvalidArgumentError('x'), 'InvalidArgumentError', 'DOVEPUSH_ERR_INVALID_ARG'],
    [new InputError('x'), 'InputError', 'DOVEPUSH_ERR_INPUT'],
    [new ScriptLoadError('x'), 'ScriptLoadError', 'DOVEPUSH_ERR_SCRIPT_LOAD'],
  ])('%s has its name and code', (err, name, code) => {
    expect(err).toBeInstanceOf(DovepushError)
    expect(err.name).toBe(name)
    expect(err.code).toBe(code)
    expect(isDovepushError(err)).toBe(true)
  })

  it('InputError names the line and the field', () => {
    const e = new InputError('expected a number, got string', { line: 3, field: 'events[0].uid' })
    expect(e.message).toBe('line 3: events[0].uid: expected a number, got string')
    expect([e.line, e.field, e.detail]).toEqual([3, 'events[0].uid', 'expected a number, got string'])
  })

  it('isDovepushError is false for other errors', () => {
    expect(isDovepushError(new Error('x'))).toBe(false)
    expect(isDovepushError({ code: 'DOVEPUSH_ERR_INPUT' })).toBe(false)
  })
})
