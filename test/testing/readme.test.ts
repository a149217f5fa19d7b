// The README's examples run: the testing-kit example is
// test/testing/readme-example.test.ts word for word, and the scenario
// example passes as written.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadScenario } from '../../src/sources/scenario.js'
import { runScenario } from '../../src/testing/run-scenario.js'

const readme = readFileSync('README.md', 'utf8')

describe('README', () => {
  it('shows readme-example.test.ts verbatim', () => {
    const example = readFileSync('test/testing/readme-example.test.ts', 'utf8')
    expect(readme).toContain('```ts\n' + example + '```')
  })

  it('its scenario example passes', async () => {
    const start = readme.indexOf('```yaml\n# fixtures/scenarios/webhook.yaml (shortened)')
    expect(start).toBeGreaterThan(0)
    const yaml = readme.slice(start + '```yaml\n'.length, readme.indexOf('```', start + 7))
    // two levels below the repository, as fixtures/scenarios/ is, so its script path resolves
    const dir = mkdtempSync(join('fixtures', '.readme-'))
    try {
      writeFileSync(join(dir, 'webhook.yaml'), yaml)
      const result = await runScenario(loadScenario(join(dir, 'webhook.yaml')))
      expect(result.failures).toEqual([])
      expect(result.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /hook'])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
