'use strict'
// A PostgreSQL smoke test from Node: record, query and reserve against a shared database.
// Skipped when USAGE_TEST_POSTGRES_URL is unset (and failed instead under
// USAGE_REQUIRE_POSTGRES=1, as the Rust suites do, so CI never skips it silently).

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const { Tracker, usd } = require('..')

const url = process.env.USAGE_TEST_POSTGRES_URL
const required = process.env.USAGE_REQUIRE_POSTGRES === '1'

test('PostgreSQL: record, summary, quotas and reservations', { skip: !url && !required && 'USAGE_TEST_POSTGRES_URL is not set' }, async () => {
  assert.ok(url, 'USAGE_REQUIRE_POSTGRES=1 but USAGE_TEST_POSTGRES_URL is not set')
  // A schema of its own (created and migrated by the store), dropped afterwards when psql is there.
  const schema = `usage_core_node_${process.pid}_${Date.now()}`
  const t = await Tracker.open(`${url}${url.includes('?') ? '&' : '?'}schema=${schema}`)
  const user = `node-pg-${process.pid}-${Date.now()}`
  try {
    const r = await t.record({ provider: 'anthropic', model: 'claude-haiku-4-5', usage: { input: 1000, output: 200 }, user_id: user })
    assert.equal(r.event.cost.total, '0.002')
    const s = await t.forUser(user).summary()
    assert.equal(s.totals.requests, 1)
    assert.equal(usd.compare(s.totals.cost_total, '0.002'), 0)
    await t.setQuota({ id: `${user}-day`, subject: { kind: 'user', id: user }, metric: 'cost', limit: '0.003', window: { kind: 'day' } })
    const subjects = [{ kind: 'user', id: user }]
    await assert.rejects(t.reserve(subjects, t.estimate('claude-haiku-4-5', 1000, 1000)), (e) => e.code === 'QUOTA_EXCEEDED' && e.quota === `${user}-day`)
    const rsv = await t.reserve(subjects, t.estimate('claude-haiku-4-5', 100, 100))
    assert.equal(await t.release(rsv.id), true)
  } finally {
    await t.close()
    spawnSync('psql', [url.split('?')[0], '-q', '-c', `DROP SCHEMA IF EXISTS "${schema}" CASCADE`], { stdio: 'ignore' })
  }
})
