#!/usr/bin/env node
// npm run conformance: see src/conformance/main.ts
import { main } from '../dist/conformance/main.js'

process.exitCode = await main(process.argv.slice(2))
