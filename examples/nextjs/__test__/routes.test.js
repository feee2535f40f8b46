// The route handlers, called directly with Request objects (no server): auth, per-user
// isolation, the figures each route serves, the CSV export, and the chat route's 429.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'

// A fake Anthropic API on 127.0.0.1 (the SDK reads ANTHROPIC_BASE_URL).
const seen = []
const fake = http.createServer((req, res) => {
  let raw = ''
  req.on('data', (c) => (raw += c))
  req.on('end', () => {
    seen.push(JSON.parse(raw))
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(
      JSON.stringify({
        id: `msg_${seen.length}`,
        type: 'message',
        role: 'assistant',
        model: 'claude-haiku-4-5',
        content: [{ type: 'text', text: 'Hi from the fake' }],
        stop_reason: 'end_turn',
        stop_sequence: null,
        usage: { input_tokens: 1000, output_tokens: 200 },
      }),
    )
  })
})

process.env.USAGE_DB_URL = 'memory://'
process.env.USAGE_API_TOKENS = 'tok-alice:alice,tok-bob:bob,tok-carl:carl'
process.env.USAGE_MONTHLY_LIMIT_USD = '5'
process.env.ANTHROPIC_API_KEY = 'test-key'

const { tracker } = await import('../lib/usage.js')
const { usd } = await import('usage-core')
const stats = await import('../app/api/usage/stats/route.js')
const quota = await import('../app/api/usage/quota/route.js')
const history = await import('../app/api/usage/history/route.js')
const models = await import('../app/api/usage/models/route.js')
const csv = await import('../app/api/usage/export/route.js')
const chat = await import('../app/api/chat/route.js')

const get = (path, token) =>
  new Request(`http://localhost${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} })

before(async () => {
  await new Promise((r) => fake.listen(0, '127.0.0.1', r))
  process.env.ANTHROPIC_BASE_URL = `http://127.0.0.1:${fake.address().port}`
  const t = await tracker()
  const day = (n) => new Date(Date.now() - n * 86400e3)
  await t.recordMany([
    { provider: 'anthropic', model: 'claude-haiku-4-5', usage: { input: 1000, output: 100 }, user_id: 'alice', timestamp: day(1) },
    { provider: 'anthropic', model: 'claude-sonnet-4-5', usage: { input: 1000, output: 100 }, user_id: 'alice', timestamp: day(3) },
    { provider: 'openai', model: 'gpt-4o-mini', usage: { input: 1000000 }, user_id: 'bob', timestamp: day(2) },
    { provider: 'anthropic', model: 'claude-haiku-4-5', usage: { input: 1000 }, user_id: 'alice', timestamp: day(45) },
  ])
})
after(() => new Promise((r) => fake.close(r)))

test('every route refuses a missing or unknown token', async () => {
  for (const route of [stats, quota, history, models, csv]) {
    assert.equal((await route.GET(get('/x'))).status, 401)
    assert.equal((await route.GET(get('/x', 'tok-nobody'))).status, 401)
  }
  const r = await chat.POST(new Request('http://localhost/api/chat', { method: 'POST', body: '{"message":"hi"}' }))
  assert.equal(r.status, 401)
})

test('stats: the caller\'s own 30-day totals, exact USD strings', async () => {
  const a = await (await stats.GET(get('/api/usage/stats', 'tok-alice'))).json()
  assert.equal(a.user, 'alice')
  assert.equal(a.requests, 2, 'the 45-day-old event is outside the 30 days')
  // haiku 1000 in / 100 out = 0.0015; sonnet 1000 in / 100 out = 0.003 + 0.0015
  assert.equal(a.cost_usd, '0.006')
  assert.equal(a.models_used, 2)
  const b = await (await stats.GET(get('/api/usage/stats?user_id=alice', 'tok-bob'))).json()
  assert.equal(b.user, 'bob', 'a query parameter cannot select another user')
  assert.equal(b.requests, 1)
  assert.equal(b.cost_usd, '0.15')
})

test('history: 30 days, empty ones included, summing to the stats', async () => {
  const h = await (await history.GET(get('/api/usage/history', 'tok-alice'))).json()
  assert.ok(h.days.length >= 30)
  assert.equal(h.days.filter((d) => d.requests > 0).length, 2)
  const total = h.days.reduce((n, d) => n + d.requests, 0)
  assert.equal(total, 2)
})

test('models: breakdown by model for the caller only', async () => {
  const m = await (await models.GET(get('/api/usage/models', 'tok-alice'))).json()
  assert.deepEqual(m.models.map((x) => x.model).sort(), ['claude-haiku-4-5', 'claude-sonnet-4-5'])
  assert.equal(m.total_cost_usd, '0.006')
  assert.ok(!m.models.some((x) => x.model === 'gpt-4o-mini'))
})

test('export: CSV of the caller\'s events only', async () => {
  const r = await csv.GET(get('/api/usage/export', 'tok-bob'))
  assert.equal(r.status, 200)
  assert.match(r.headers.get('content-type'), /text\/csv/)
  const lines = (await r.text()).trim().split('\n')
  assert.equal(lines.length, 2)
  assert.match(lines[0], /^schema_version,id,timestamp/)
  assert.match(lines[1], /gpt-4o-mini/)
  assert.doesNotMatch(lines[1], /alice/)
})

test('chat: answers through the wrapped client and records the call for the user', async () => {
  const before = seen.length
  const r = await chat.POST(
    new Request('http://localhost/api/chat', { method: 'POST', headers: { authorization: 'Bearer tok-carl' }, body: JSON.stringify({ message: 'Hello' }) }),
  )
  assert.equal(r.status, 200)
  assert.equal((await r.json()).reply, 'Hi from the fake')
  assert.equal(seen.length, before + 1)
  const t = await tracker()
  await t.flush()
  const s = await (await stats.GET(get('/api/usage/stats', 'tok-carl'))).json()
  assert.equal(s.requests, 1)
  assert.equal(s.cost_usd, '0.002')
  const q = await (await quota.GET(get('/api/usage/quota', 'tok-carl'))).json()
  assert.equal(q.quotas[0].id, 'carl-monthly')
  assert.equal(usd.compare(q.quotas[0].used, '0.002'), 0)
  assert.equal(q.quotas[0].is_blocked, false)
  assert.ok(new Date(q.quotas[0].resets_at) > new Date(), 'the monthly window resets in the future')
})

test('chat: a user over quota gets 429 and Anthropic is not called', async () => {
  const t = await tracker()
  // Bob already spent 0.15; give him a 0.10 monthly limit.
  await t.setQuota({ id: 'bob-monthly', subject: { kind: 'user', id: 'bob' }, metric: 'cost', limit: '0.10', window: { kind: 'month', anchor_day: 1 } })
  const q = await (await quota.GET(get('/api/usage/quota', 'tok-bob'))).json()
  assert.equal(q.quotas[0].is_blocked, true)
  assert.equal(q.quotas[0].level, 'blocked')
  const before = seen.length
  const r = await chat.POST(
    new Request('http://localhost/api/chat', { method: 'POST', headers: { authorization: 'Bearer tok-bob' }, body: JSON.stringify({ message: 'Hello' }) }),
  )
  assert.equal(r.status, 429)
  const body = await r.json()
  assert.equal(body.error, 'quota_exceeded')
  assert.equal(body.quota, 'bob-monthly')
  assert.equal(body.limit_usd, '0.10')
  assert.equal(seen.length, before, 'no request reached Anthropic')
})
