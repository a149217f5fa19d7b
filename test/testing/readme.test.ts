// The README's testing-kit example is test/testing/readme-example.test.ts,
// word for word, so the example people copy is one CI runs.

import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'

describe('README', () => {
  it('shows readme-example.test.ts verbatim', () => {
    const readme = readFileSync('README.md', 'utf8')
    const example = readFileSync('test/testing/readme-example.test.ts', 'utf8')
    expect(readme).toContain('```ts\n' + example + '```')
  })
})
