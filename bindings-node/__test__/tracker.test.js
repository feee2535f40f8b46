'use strict'
// The Tracker surface from CommonJS: recording, reports, quotas, alerts, forecasts, exports,
// scoped handles, typed errors with the Rust fields, and a non-blocking event loop.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Writable } = require('node:stream')

const usage = require('..')
const { Tracker, Catalog, UsageError, QuotaExceededError, usd, cost } = usage

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'usage-core-node-'))
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }))

const DAY = 86400e3
const haiku = (user, input, output, extra = {}) => ({
  provider: 'anthropic',
  model: 'claude-haiku-4-5',
  usage: { input, output },
  user_id: user,
  ...extra,
})

test('CommonJS require gives the same API as the ESM import', async () => {
  const esm = await import('../index.mjs')
  assert.equal(esm.Tracker, Tracker)
  assert.equal(esm.cost, cost)
  assert.equal(esm.default.usd, usd)
  assert.match(usage.version(), /^\d+\.\d+\.\d+/)
})

test('record prices exactly and returns the stored event; timestamps accept Date and ISO strings', async () => {
  const t = await Tracker.open('memory://')
  const at = new Date('2026-03-01T12:00:00.123Z')
  const r = await t.record(haiku('u1', 1234, 567, { id: 'e1', timestamp: at, tags: { team: 'ml' } }))
  assert.equal(r.duplicate, false)
  assert.equal(r.event.timestamp, '2026-03-01T12:00:00.123Z')
  // 1234 × $1/M + 567 × $5/M = 0.001234 + 0.002835
  assert.equal(r.event.cost.total, '0.004069')
  assert.equal(r.breakdown.basis.model, 'claude-haiku-4-5')
  const again = await t.record(haiku('u1', 1234, 567, { id: 'e1', timestamp: '2026-03-01T12:00:00.123Z' }))
  assert.equal(again.duplicate, true, 'the same id is not counted twice')
  assert.equal((await t.summary()).totals.requests, 1)
})

test('reports: summary, timeseries, breakdown, top, compare and the general query', async () => {
  const t = await Tracker.open(`sqlite://${path.join(tmp, 'reports.db')}`)
  const now = Date.now()
  const day = (n) => new Date(now - n * DAY)
  await t.recordMany([
    haiku('ann', 1000, 100, { timestamp: day(1) }),
    haiku('ann', 2000, 100, { timestamp: day(2) }),
    haiku('ben', 1000, 100, { timestamp: day(1) }),
    { provider: 'openai', model: 'gpt-4o-mini', usage: { input: 1000, output: 1000 }, user_id: 'ben', timestamp: day(1) },
  ])
  const range = { start: day(7), end: new Date(now + 1000) }
  const s = await t.summary({ range }, ['user'])
  assert.equal(s.totals.requests, 4)
  assert.equal(s.distinct.user, 2)
  // 0.0015 + 0.0025 + 0.0015 + (0.00015 + 0.0006)
  assert.equal(s.totals.cost_total, '0.00625')
  const series = await t.timeseries({ range }, 'day', 'UTC')
  assert.ok(series.length >= 7, 'every day of the range, empty ones included')
  assert.equal(usd.sum(series.map((p) => p.totals.cost_total)), '0.00625')
  const byModel = await t.breakdown({ range }, 'model')
  assert.deepEqual(byModel.rows.map((r) => r.key).sort(), ['claude-haiku-4-5', 'gpt-4o-mini'])
  assert.equal(usd.sum(byModel.rows.map((r) => r.totals.cost_total)), s.totals.cost_total)
  const top = await t.top({ range }, 'user', 'cost', 1)
  assert.equal(top.rows.length, 1)
  assert.equal(top.rows[0].key, 'ann') // 0.004 against ben's 0.00225
  assert.equal(top.total_rows, 2)
  const cmp = await t.compare({}, { start: day(1.5), end: new Date(now + 1000) }, { start: day(3), end: day(1.5) })
  assert.equal(cmp.current.requests, 3)
  assert.equal(cmp.previous.requests, 1)
  const q = await t.query({ filter: { range }, group_by: ['user'] })
  assert.deepEqual(q.rows.map((r) => r.group[0]).sort(), ['ann', 'ben'])
  await t.close()
})

test('errors carry a stable code and the Rust fields', async () => {
  const t = await Tracker.open('memory://')
  assert.throws(() => t.estimate('no-such-model', 10, 10), (e) => {
    assert.ok(e instanceof UsageError)
    assert.ok(e instanceof Error)
    assert.equal(e.code, 'UNKNOWN_MODEL')
    assert.equal(e.model, 'no-such-model')
    assert.match(e.stack, /tracker\.test\.js/, 'the stack points at the caller')
    return true
  })
  // Recording never drops an event: an unknown model is stored unpriced, and says why.
  const unpriced = await t.record(haiku('u', 1, 1, { model: 'no-such-model' }))
  assert.equal(unpriced.event.cost, null)
  assert.equal(unpriced.event.cost_source, 'unpriced')
  assert.match(unpriced.event.unpriced_reason, /no-such-model/)
  assert.throws(() => cost('claude-haiku-4-5', { output: 1, reasoning: 2 }), (e) => e.code === 'INVALID_USAGE' && e.field === 'reasoning' && typeof e.reason === 'string')
  await assert.rejects(Tracker.open('ftp://x'), (e) => e.code === 'INVALID_ARGUMENT' && e.field === 'url')
  await assert.rejects(t.release('rsv_missing').then(() => t.commit('rsv_missing', [])), (e) => typeof e.code === 'string')
  assert.throws(() => usage.extract('anthropic', { type: 'message', model: 'm', usage: { input_tokens: -1 } }), (e) => e.code === 'INVALID_RESPONSE' && e.provider === 'anthropic' && /input_tokens/.test(e.field))
  await assert.rejects(t.summary({ nonsense: 1 }), (e) => e.code === 'INVALID_ARGUMENT' && e.field === 'filter')
  await t.close()
  await assert.rejects(t.record(haiku('u', 1, 1)), (e) => e.code === 'STORE_ERROR' && e.backend === 'memory')
})

test('quotas: status levels, check, reserve / commit / release, QUOTA_EXCEEDED fields', async () => {
  const t = await Tracker.open('memory://')
  await t.setQuota({ id: 'zoe-day', subject: { kind: 'user', id: 'zoe' }, metric: 'cost', limit: '0.01', window: { kind: 'day' } })
  const subjects = [{ kind: 'user', id: 'zoe' }]
  await t.record(haiku('zoe', 0, 1700)) // 0.0085 = 85%
  let [s] = await t.quotaStatus(subjects)
  assert.equal(usd.compare(s.used, '0.0085'), 0)
  assert.equal(s.level, 'warning')
  assert.deepEqual([s.is_warning, s.is_upgrade_suggested, s.is_blocked], [true, false, false])
  const est = t.estimate('claude-haiku-4-5', 1000, 1000) // 0.001 + 0.005
  assert.equal(est.cost, '0.006')
  const d = await t.check(subjects, est)
  assert.equal(d.allowed, false)
  await assert.rejects(t.reserve(subjects, est), (e) => {
    assert.ok(e instanceof QuotaExceededError)
    assert.deepEqual([e.quota, e.limit, e.requested], ['zoe-day', '0.01', '0.006'])
    assert.equal(usd.compare(e.used, '0.0085'), 0)
    return true
  })
  const small = usage.pricedEstimate('claude-haiku-4-5', { input: 100, output: 100 })
  const r = await t.reserve(subjects, small)
  ;[s] = await t.quotaStatus(subjects)
  assert.equal(usd.compare(s.held, small.cost), 0)
  const rec = await t.commit(r.id, [haiku('zoe', 100, 100)])
  assert.equal(rec.length, 1)
  ;[s] = await t.quotaStatus(subjects)
  assert.equal(s.held, '0')
  assert.equal(await t.release(r.id), false, 'a committed reservation has nothing left to release')
  const r2 = await t.reserve(subjects, small)
  assert.equal(await t.release(r2.id), true)
  assert.equal((await t.quotas()).length, 1)
  assert.equal(await t.deleteQuota('zoe-day'), true)
})

test('alerts fire once, to the callback and in alerts()', async () => {
  const t = await Tracker.open('memory://')
  const seen = []
  t.onAlert((a) => seen.push(a))
  await t.setQuota({ id: 'team-day', subject: { kind: 'tag', key: 'team', value: 'ml' }, metric: 'requests', limit: 2, window: { kind: 'day' } })
  const since = new Date(Date.now() - 1000)
  const r1 = await t.record(haiku('a', 1, 1, { tags: { team: 'ml' } }))
  const r2 = await t.record(haiku('b', 1, 1, { tags: { team: 'ml' } }))
  await t.record(haiku('c', 1, 1, { tags: { team: 'ml' } }))
  assert.equal(r1.alerts.length, 0)
  assert.deepEqual(r2.alerts.map((a) => a.threshold), ['warning', 'upgrade_suggested', 'blocked'])
  await new Promise((r) => setTimeout(r, 20))
  assert.deepEqual(seen.map((a) => a.threshold), ['warning', 'upgrade_suggested', 'blocked'])
  assert.equal(seen[0].quota_id, 'team-day')
  const stored = await t.alerts(since, 10)
  assert.equal(stored.length, 3)
})

test('forecast any slice of usage', async () => {
  const t = await Tracker.open('memory://')
  for (let d = 1; d <= 10; d++) await t.record(haiku('f', 0, 2000, { timestamp: new Date(Date.now() - d * DAY) }))
  const f = await t.forecast({ user_id: 'f' }, 'cost', { kind: 'month', anchor_day: 1 }, 'UTC', '1', { lookback_days: 14 })
  assert.equal(typeof f.projected, 'string')
  assert.ok(usd.compare(f.burn_rate_per_day, '0') > 0, 'ten days of spend give a positive burn rate')
  assert.equal(f.limit, '1')
})

test('scoped handles never read another user\'s figures', async () => {
  const t = await Tracker.open('memory://')
  await t.recordMany([haiku('amy', 1000, 0), haiku('bob', 5000, 0)])
  const amy = t.forUser('amy')
  assert.equal((await amy.summary()).totals.input, 1000)
  await assert.rejects(amy.summary({ user_id: 'bob' }), (e) => e.code === 'INVALID_ARGUMENT')
  await assert.rejects(amy.record(haiku('bob', 1, 1)), (e) => e.code === 'INVALID_ARGUMENT' && e.field === 'user_id')
  await assert.rejects(amy.alerts(new Date(0), 10), (e) => e.code === 'INVALID_ARGUMENT' && e.field === 'scope')
  const team = t.scoped({ tags: { team: 'x' } })
  assert.deepEqual(team.scope.tags, { team: 'x' })
})

test('CSV export to a file and to a stream, scoped to the handle', async () => {
  const t = await Tracker.open(`sqlite://${path.join(tmp, 'export.db')}`)
  await t.recordMany([haiku('amy', 1000, 10), haiku('amy', 2000, 20), haiku('bob', 3000, 30)])
  const file = path.join(tmp, 'all.csv')
  assert.equal(await t.exportCsv(file), 3)
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n')
  assert.equal(lines.length, 4)
  assert.match(lines[0], /^schema_version,id,timestamp,provider,model/)
  const chunks = []
  const sink = new Writable({
    write(c, _e, cb) {
      chunks.push(c)
      cb()
    },
  })
  assert.equal(await t.forUser('amy').exportCsv(sink), 2)
  const text = Buffer.concat(chunks).toString()
  assert.equal(text.trim().split('\n').length, 3)
  assert.doesNotMatch(text, /bob/)
  let jsonl = ''
  const stream = t.exportStream({ user_id: 'bob' }, 'jsonl')
  for await (const c of stream) jsonl += c
  assert.equal(JSON.parse(jsonl.trim()).usage.input, 3000)
  assert.equal(stream.rows, 1)
  await assert.rejects(t.exportCsv(path.join(tmp, 'no', 'such', 'dir.csv')), (e) => e.code === 'STORE_ERROR')
  await t.close()
})

test('the event loop keeps turning while a large store call runs', async () => {
  const t = await Tracker.open(`sqlite://${path.join(tmp, 'loop.db')}`)
  const events = Array.from({ length: 20000 }, (_, i) => haiku(`u${i % 50}`, 100 + i, 10, { id: `loop-${i}` }))
  let ticks = 0
  let spinning = true
  const spin = () => {
    ticks++
    if (spinning) setImmediate(spin)
  }
  setImmediate(spin)
  let rec, during, duringExport, ms
  try {
    const started = ticks
    const t0 = process.hrtime.bigint()
    rec = await t.recordMany(events)
    ms = Number(process.hrtime.bigint() - t0) / 1e6
    during = ticks - started
    const file = path.join(tmp, 'loop.csv')
    const ticksBefore = ticks
    assert.equal(await t.exportCsv(file), 20000)
    duringExport = ticks - ticksBefore
  } finally {
    spinning = false
  }
  assert.equal(rec.length, 20000)
  // A call that blocked the loop would let at most one tick through.
  assert.ok(during > 10, `only ${during} loop turns in ${ms.toFixed(0)} ms of recordMany`)
  assert.ok(duringExport > 10, `only ${duringExport} loop turns during the export`)
  await t.close()
})

test('catalogs: custom models, overrides and LiteLLM import', () => {
  const c = Catalog.builtin()
  assert.ok(c.modelIds().includes('claude-haiku-4-5'))
  assert.equal(c.resolve('claude-haiku-4-5-20251001'), 'claude-haiku-4-5')
  assert.ok(c.removeModel('claude-haiku-4-5'))
  assert.throws(() => c.cost('claude-haiku-4-5', { input: 1 }), (e) => e.code === 'UNKNOWN_MODEL')
  const again = Catalog.fromJson(Catalog.builtin().toJson())
  assert.equal(again.cost('claude-haiku-4-5', { input: 1000000 }).total, '1')
  assert.throws(() => Catalog.fromJson('{"nope": 1}'), (e) => e.code === 'INVALID_CATALOG' || e.code === 'INVALID_ARGUMENT')
})

test('a tracker prices with its own catalog: custom models and overrides', async () => {
  // $2 / $8 per million, in the catalog's model file format.
  const custom = { id: 'acme-small', provider: 'anthropic', name: 'Acme Small', prices: [{ input: '2', output: '8' }] }
  const t = await Tracker.open('memory://', { catalog: Catalog.builtin() })
  const c = t.catalog()
  assert.ok(c instanceof Catalog)
  assert.equal(c.resolve('claude-haiku-4-5'), 'claude-haiku-4-5')
  c.removeModel('claude-haiku-4-5')
  t.setCatalog(c)
  const r = await t.record(haiku('cat', 1000, 0))
  assert.equal(r.event.cost, null, 'the replaced catalog no longer knows the model')
  assert.throws(() => t.estimate('claude-haiku-4-5', 1, 1), (e) => e.code === 'UNKNOWN_MODEL')
  c.addModel(custom)
  t.setCatalog(c)
  const a = await t.record({ provider: 'anthropic', model: 'acme-small', usage: { input: 1000, output: 1000 }, user_id: 'cat' })
  assert.equal(a.event.cost.total, '0.01')
  assert.throws(() => c.addModel({ id: 'broken', provider: 'anthropic', name: 'x', prices: [{ input: '-1', output: '1' }] }), (e) => e.code === 'INVALID_CATALOG')
})

test('money helpers are exact', () => {
  assert.equal(usd.add('0.1', '0.2'), '0.3')
  assert.equal(0.1 + 0.2 === 0.3, false, 'the float sum is not, which is why these exist')
  assert.equal(usd.sub('1', '0.000000001'), '0.999999999')
  assert.equal(usd.sum(['0.000000001', '0.000000002', '0.1']), '0.100000003')
  assert.equal(usd.compare('0.50', '0.5'), 0)
  assert.equal(usd.compare('0.000000002', '0.000000001'), 1)
  assert.equal(usd.round('0.0000000125', 9), '0.000000012')
  assert.equal(usd.toCents('12.345'), 1234n)
  assert.equal(usd.toCents('12.355'), 1236n)
  assert.throws(() => usd.add('abc', '1'), (e) => e.code === 'INVALID_ARGUMENT' && e.field === 'a')
})

test('cost() options: the instant and the pricing context', () => {
  const base = cost('claude-haiku-4-5', { input: 1000000 }, { at: new Date('2026-06-01T00:00:00Z') })
  const batch = cost('claude-haiku-4-5', { input: 1000000 }, { at: '2026-06-01T00:00:00Z', service_tier: 'batch' })
  assert.equal(base.total, '1')
  assert.equal(batch.total, '0.5')
  assert.deepEqual(batch.basis.modifiers.map((m) => m.kind), ['batch'])
  assert.throws(() => cost('claude-haiku-4-5', { input: 1 }, { service_tier: 'batchy' }), (e) => e.code === 'INVALID_ARGUMENT' && e.field === 'service_tier')
  assert.throws(() => cost('claude-haiku-4-5', { input: 1.5 }), (e) => e.code === 'INVALID_USAGE' && e.field === 'input')
  assert.throws(() => cost('claude-haiku-4-5', { output: -1 }), (e) => e.code === 'INVALID_USAGE' && e.field === 'output')
})

test('recordResponse reads a provider payload', async () => {
  const t = await Tracker.open('memory://')
  const recs = await t.recordResponse(
    'openai',
    { id: 'chatcmpl-9', object: 'chat.completion', model: 'gpt-4o-mini', choices: [], usage: { prompt_tokens: 1000, completion_tokens: 1000, total_tokens: 2000 } },
    { userId: 'rr', tags: { route: '/x' }, latencyMs: 42 },
  )
  assert.equal(recs[0].event.id, 'chatcmpl-9')
  assert.equal(recs[0].event.cost.total, '0.00075')
  assert.equal(recs[0].event.latency_ms, 42)
  assert.equal(recs[0].event.user_id, 'rr')
})

test('rollup maintenance: verify, rebuild, runs, purge', async () => {
  const t = await Tracker.open(`sqlite://${path.join(tmp, 'rollups.db')}`)
  await t.recordMany([haiku('a', 1, 1, { timestamp: new Date(Date.now() - 3 * DAY) }), haiku('a', 1, 1)])
  assert.deepEqual(await t.verifyRollups(), [])
  const run = await t.rebuildRollups()
  assert.equal(run.outcome, 'succeeded')
  const hour = 3600e3
  const purged = await t.purge(new Date(Math.floor((Date.now() - 2 * DAY) / hour) * hour))
  assert.equal(purged.rows, 1)
  assert.equal((await t.runs(10)).length, 2)
  const { report } = await t.reprice(Catalog.builtin(), { dryRun: true })
  assert.equal(typeof report, 'object')
  // Progress after each batch, and cancellation through an AbortSignal (everything rolled back).
  await t.recordMany(Array.from({ length: 30 }, (_, i) => haiku('p', 1, 1, { timestamp: new Date(Date.now() - i * 3600e3) })))
  const seen = []
  await t.rebuildRollups(undefined, { batchSize: 5, onProgress: (p) => seen.push(p.done) })
  await new Promise((r) => setTimeout(r, 20))
  assert.ok(seen.length >= 2, `progress reported ${seen.length} times`)
  assert.ok(seen.every((d, i) => i === 0 || d >= seen[i - 1]), 'progress only grows')
  const ac = new AbortController()
  ac.abort()
  const cancelled = await t.rebuildRollups(undefined, { batchSize: 5, signal: ac.signal })
  assert.equal(cancelled.outcome, 'cancelled')
  assert.deepEqual(await t.verifyRollups(), [])
  await t.close()
})
