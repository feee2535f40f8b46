// The shared usage-core vectors (usage-core/tests/vectors/*.json, format in its README), run
// through the Node API: every case must give exactly the result the Rust runner checks.
// Also proves the ESM entry point works (this file is an ES module).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { cost, extract, StreamAccumulator, Catalog, usd } from '../index.mjs'

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'usage-core', 'tests', 'vectors')
const LINES = ['input', 'cache_read', 'cache_write_5m', 'cache_write_1h', 'output', 'web_search', 'total']
const USAGE = ['input', 'cache_read', 'cache_write_5m', 'cache_write_1h', 'output', 'reasoning', 'web_search_requests', 'web_fetch_requests']
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort()
const builtin = Catalog.builtin()

/** The first record a case yields: `{ built }`, `{ error }`, or `{ none: true }`. */
function build(c) {
  try {
    if (c.response !== undefined) {
      const recs = extract(c.provider, c.response)
      if (recs.length === 0) return { none: true }
      return { built: { ...recs[0], records: recs.length } }
    }
    if (c.stream !== undefined) {
      const acc = new StreamAccumulator(c.provider)
      for (const ev of c.stream) acc.push(ev)
      return { built: acc.finish() }
    }
    return { built: { model: c.model, usage: c.usage, context: {}, billable: true } }
  } catch (error) {
    return { error }
  }
}

function check(c) {
  const expect = c.expect
  const diffs = []
  const b = build(c)
  if (b.error) {
    if (!b.error.code) throw b.error
    if (expect.error !== b.error.code) diffs.push(`expected ${expect.error ?? 'a cost'}, got error ${b.error.code}: ${b.error.message}`)
    return diffs
  }
  if (b.none) {
    if ((expect.records ?? 1) !== 0) diffs.push(`records: expected ${expect.records ?? 1}, got 0`)
    return diffs
  }
  const r = b.built
  if (r.records !== undefined && (expect.records ?? 1) !== r.records) diffs.push(`records: expected ${expect.records ?? 1}, got ${r.records}`)
  if ((c.response !== undefined || c.stream !== undefined) && c.model) r.model = c.model
  const context = { ...(r.context || {}), ...(c.context || {}) }
  if (expect.usage) {
    for (const k of USAGE) {
      if ((expect.usage[k] ?? 0) !== (r.usage[k] ?? 0)) diffs.push(`usage.${k}: expected ${expect.usage[k] ?? 0}, got ${r.usage[k]}`)
    }
  }
  for (const flag of ['complete', 'billable']) {
    if (expect[flag] !== undefined && r[flag] !== undefined && expect[flag] !== r[flag]) diffs.push(`${flag}: expected ${expect[flag]}, got ${r[flag]}`)
  }
  const lines = (got) => {
    for (const line of LINES) {
      const want = (expect.cost && expect.cost[line]) ?? '0'
      const g = (got && got[line]) ?? '0'
      if (usd.compare(want, g) !== 0) diffs.push(`cost.${line}: expected ${want}, got ${g}`)
    }
  }
  if (r.billable === false) {
    if (expect.error) diffs.push(`expected ${expect.error}, got a non-billable record`)
    if (expect.model && builtin.resolve(r.model) !== expect.model) diffs.push(`model: expected ${expect.model}`)
    if (expect.cost) lines(null)
    return diffs
  }
  let priced
  try {
    priced = cost(r.model, r.usage, { at: c.at, ...context })
  } catch (e) {
    if (!e.code) throw e
    if (expect.error !== e.code) diffs.push(`expected ${expect.error ?? 'a cost'}, got error ${e.code}: ${e.message}`)
    return diffs
  }
  if (expect.error) return [`expected ${expect.error}, got a cost of ${priced.total}`]
  if (expect.model && priced.basis.model !== expect.model) diffs.push(`model: expected ${expect.model}, got ${priced.basis.model}`)
  lines(priced)
  if ((expect.tier_above ?? null) !== (priced.basis.tier_above ?? null)) diffs.push(`tier_above: expected ${expect.tier_above ?? null}, got ${priced.basis.tier_above}`)
  if (expect.modifiers) {
    const got = priced.basis.modifiers.map((m) => m.kind)
    if (JSON.stringify(got) !== JSON.stringify(expect.modifiers)) diffs.push(`modifiers: expected ${expect.modifiers}, got ${got}`)
  }
  return diffs
}

test('the shared vector folder is found and not empty', () => {
  assert.ok(files.length >= 10, `expected the vector files in ${dir}, found ${files}`)
})

let total = 0
for (const file of files) {
  const doc = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'))
  test(`vectors: ${file}`, () => {
    const failures = []
    for (const c of doc.cases) {
      total++
      const diffs = check(c)
      if (diffs.length) failures.push(`${c.name}:\n    ${diffs.join('\n    ')}`)
    }
    assert.deepEqual(failures, [], `${failures.length} case(s) differ from the expected results`)
  })
}

test('every case of every file ran', () => {
  const expected = files.reduce((n, f) => n + JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')).cases.length, 0)
  assert.equal(total, expected)
  assert.ok(total > 100, `only ${total} cases`)
})
