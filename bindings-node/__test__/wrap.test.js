'use strict'
// tracker.wrap() with the real @anthropic-ai/sdk and openai packages, pointed at a fake
// provider on 127.0.0.1: what gets recorded, what the caller sees, and quota enforcement.

const { test, before, after, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const Anthropic = require('@anthropic-ai/sdk')
const OpenAI = require('openai')

const { Tracker, isQuotaExceeded, QuotaExceededError } = require('..')
const { startFake, anthropic, openai } = require('./fake-provider')

let fake
let tracker

before(async () => {
  fake = await startFake()
})
after(async () => {
  await fake.close()
})
beforeEach(async () => {
  fake.requests.length = 0
  fake.script.length = 0
  tracker = await Tracker.open('memory://')
})

const claude = () => new Anthropic({ apiKey: 'test-key', baseURL: fake.url, maxRetries: 0 })
const gpt = () => new OpenAI({ apiKey: 'test-key', baseURL: `${fake.url}/v1`, maxRetries: 0 })
const ask = { model: 'claude-haiku-4-5', max_tokens: 256, messages: [{ role: 'user', content: 'Hello' }] }
const chat = { model: 'gpt-4o-mini', max_completion_tokens: 256, messages: [{ role: 'user', content: 'Hello' }] }

async function events(filter = {}) {
  await tracker.flush()
  const q = await tracker.query({ filter, group_by: ['status'] })
  return q
}

async function totals(filter = {}) {
  await tracker.flush()
  return (await tracker.summary(filter)).totals
}

async function held(userId) {
  const s = await tracker.quotaStatus([{ kind: 'user', id: userId }])
  return s.map((q) => q.held)
}

test('anthropic messages.create: the response is unchanged and its usage, cost, user and tags are recorded', async () => {
  fake.script.push({ json: anthropic.message() })
  const client = tracker.wrap(claude(), { userId: 'alice', tags: { feature: 'chat' } })
  const msg = await client.messages.create(ask)
  assert.equal(msg.content[0].text, 'Hello there')
  assert.equal(fake.requests.length, 1)
  assert.deepEqual(fake.requests[0].body.messages, ask.messages)
  await tracker.flush()
  const e = await tracker.event('msg_01')
  assert.ok(e, 'the event is stored under the message id')
  assert.equal(e.user_id, 'alice')
  assert.deepEqual(e.tags, { feature: 'chat' })
  assert.equal(e.status, 'success')
  assert.deepEqual([e.usage.input, e.usage.output], [1000, 200])
  // $1/M input + $5/M output: 0.001 + 0.001
  assert.equal(e.cost.total, '0.002')
  assert.equal(typeof e.duration_ms, 'number')
})

test('the recorded latency and duration are the call\'s', async () => {
  fake.script.push({ json: anthropic.message({}, { id: 'msg_slow' }), delayMs: 120 })
  const client = tracker.wrap(claude(), { userId: 'slow' })
  const t0 = Date.now()
  await client.messages.create(ask)
  const took = Date.now() - t0
  await new Promise((r) => setTimeout(r, 50)) // recording happens after the call returned
  await tracker.flush()
  const e = await tracker.event('msg_slow')
  assert.ok(e.duration_ms >= 120 && e.duration_ms <= took, `duration ${e.duration_ms} ms, call took ${took} ms`)
  assert.ok(e.latency_ms >= 120 && e.latency_ms <= took, `latency ${e.latency_ms} ms`)
  const at = Date.parse(e.timestamp)
  assert.ok(at >= t0 + 120 && at <= t0 + took, 'stamped when the call ended, not when it was written')
})

test('a response whose usage cannot be read still reaches the caller; the failure is a process warning', async () => {
  await tracker.setQuota({ id: 'olga-daily', subject: { kind: 'user', id: 'olga' }, metric: 'cost', limit: '10', window: { kind: 'day' } })
  const broken = anthropic.message()
  broken.usage = { input_tokens: 'many' }
  fake.script.push({ json: broken })
  const client = tracker.wrap(claude(), { userId: 'olga' })
  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  try {
    const msg = await client.messages.create(ask)
    assert.equal(msg.id, 'msg_01')
    await tracker.flush()
    await new Promise((r) => setImmediate(r))
  } finally {
    process.off('warning', onWarning)
  }
  assert.equal(warnings.length, 1)
  assert.equal(warnings[0].code, 'USAGE_CORE_RECORD_FAILED')
  assert.match(warnings[0].message, /input_tokens/)
  assert.deepEqual(await held('olga'), ['0'], 'the hold is released')
})

test('anthropic: cached tokens are priced at cache prices', async () => {
  fake.script.push({ json: anthropic.message({ cache_read_input_tokens: 5000, cache_creation_input_tokens: 1000 }) })
  const client = tracker.wrap(claude(), { userId: 'bob' })
  await client.messages.create(ask)
  const t = await totals({ user_id: 'bob' })
  assert.deepEqual([t.input, t.cache_read, t.cache_write_5m, t.output], [1000, 5000, 1000, 200])
  // 0.001 input + 5000 × $0.10/M + 1000 × $1.25/M + 0.001 output
  assert.equal(t.cost_total, '0.00375')
})

test('withResponse() still works through the wrapper', async () => {
  fake.script.push({ json: anthropic.message() })
  const client = tracker.wrap(claude(), { userId: 'alice' })
  const { data, response } = await client.messages.create(ask).withResponse()
  assert.equal(data.id, 'msg_01')
  assert.equal(response.status, 200)
})

test('a 500 records an error event and releases the hold; the SDK error reaches the caller', async () => {
  await tracker.setQuota({ id: 'carol-daily', subject: { kind: 'user', id: 'carol' }, metric: 'cost', limit: '10', window: { kind: 'day' } })
  fake.script.push({ status: 500, json: { type: 'error', error: { type: 'api_error', message: 'Internal server error' } } })
  const client = tracker.wrap(claude(), { userId: 'carol' })
  await assert.rejects(client.messages.create(ask), (e) => e instanceof Anthropic.InternalServerError)
  const t = await totals({ user_id: 'carol' })
  assert.equal(t.requests, 1)
  assert.equal(t.errors, 1)
  assert.equal(t.cost_total, '0')
  assert.deepEqual(await held('carol'), ['0'])
})

test('an OpenAI 429 records a rate-limit error event and releases the hold', async () => {
  await tracker.setQuota({ id: 'dave-daily', subject: { kind: 'user', id: 'dave' }, metric: 'requests', limit: 100, window: { kind: 'day' } })
  fake.script.push({ status: 429, json: { error: { message: 'Rate limit reached', type: 'rate_limit_exceeded', code: 'rate_limit_exceeded', param: null } } })
  const client = tracker.wrap(gpt(), { userId: 'dave' })
  await assert.rejects(client.chat.completions.create(chat), (e) => e instanceof OpenAI.RateLimitError)
  await tracker.flush()
  const q = await tracker.query({ filter: { user_id: 'dave' }, group_by: ['status'] })
  assert.equal(q.rows.length, 1)
  assert.deepEqual(q.rows[0].group, ['error'])
  assert.deepEqual(await held('dave'), ['0'])
})

test('a blocked user gets QUOTA_EXCEEDED and the provider sees no request', async () => {
  await tracker.setQuota({ id: 'erin-daily', subject: { kind: 'user', id: 'erin' }, metric: 'cost', limit: '0.001', window: { kind: 'day' } })
  await tracker.record({ provider: 'anthropic', model: 'claude-haiku-4-5', usage: { input: 1000 }, user_id: 'erin' })
  const client = tracker.wrap(claude(), { userId: 'erin' })
  await assert.rejects(client.messages.create(ask), (e) => {
    assert.ok(e instanceof QuotaExceededError)
    assert.equal(e.code, 'QUOTA_EXCEEDED')
    assert.equal(e.quota, 'erin-daily')
    assert.equal(e.limit, '0.001')
    return true
  })
  // The same for a stream and for messages.stream() (where the SDK wraps it as `cause`).
  await assert.rejects(client.messages.create({ ...ask, stream: true }), (e) => e.code === 'QUOTA_EXCEEDED')
  const s = client.messages.stream(ask)
  await assert.rejects(s.finalMessage(), (e) => isQuotaExceeded(e))
  assert.equal(fake.requests.length, 0)
})

test('tracker.run() sets the identity of wrapped calls through AsyncLocalStorage', async () => {
  fake.script.push({ json: anthropic.message({}, { id: 'msg_ctx1' }) }, { json: anthropic.message({}, { id: 'msg_ctx2' }) })
  const client = tracker.wrap(claude(), { tags: { app: 'web' } })
  await Promise.all([
    tracker.run({ userId: 'u-one', tags: { route: '/a' } }, () => client.messages.create(ask)),
    tracker.run({ userId: 'u-two' }, async () => {
      await new Promise((r) => setImmediate(r))
      return client.messages.create(ask)
    }),
  ])
  await tracker.flush()
  const a = await tracker.event('msg_ctx1')
  const b = await tracker.event('msg_ctx2')
  assert.equal(a.user_id, 'u-one')
  assert.deepEqual(a.tags, { app: 'web', route: '/a' })
  assert.equal(b.user_id, 'u-two')
  assert.deepEqual(b.tags, { app: 'web' })
})

test('anthropic stream: the caller sees every event, usage is recorded when the stream ends', async () => {
  fake.script.push({ sse: anthropic.stream({ input: 1000, output: 200 }) })
  const client = tracker.wrap(claude(), { userId: 'frank' })
  const stream = await client.messages.create({ ...ask, stream: true })
  assert.ok(stream instanceof (require('@anthropic-ai/sdk/streaming').Stream))
  const types = []
  let text = ''
  for await (const ev of stream) {
    types.push(ev.type)
    if (ev.type === 'content_block_delta') text += ev.delta.text
  }
  assert.equal(text, 'Hello')
  assert.deepEqual(types, ['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'])
  await tracker.flush()
  const e = await tracker.event('msg_s1')
  assert.equal(e.status, 'success')
  assert.deepEqual([e.usage.input, e.usage.output], [1000, 200])
  assert.equal(e.cost.total, '0.002')
  assert.equal(typeof e.latency_ms, 'number')
})

test('messages.stream(): finalMessage() and on("text") work and usage is recorded', async () => {
  fake.script.push({ sse: anthropic.stream({ id: 'msg_helper', input: 2000, output: 100, parts: ['Hi', ' you'] }) })
  const client = tracker.wrap(claude(), { userId: 'gina' })
  const texts = []
  const s = client.messages.stream(ask).on('text', (t) => texts.push(t))
  const final = await s.finalMessage()
  assert.deepEqual(texts, ['Hi', ' you'])
  assert.equal(final.content[0].text, 'Hi you')
  assert.equal(final.usage.output_tokens, 100)
  assert.equal(await s.finalText(), 'Hi you')
  await tracker.flush()
  const e = await tracker.event('msg_helper')
  assert.deepEqual([e.usage.input, e.usage.output, e.user_id], [2000, 100, 'gina'])
})

test('a stream cut off mid-way records the usage seen as an error and releases the hold', async () => {
  await tracker.setQuota({ id: 'hank-daily', subject: { kind: 'user', id: 'hank' }, metric: 'cost', limit: '10', window: { kind: 'day' } })
  fake.script.push({ sse: anthropic.stream({ id: 'msg_cut', input: 3000, output: 500 }), cutAfter: 3 })
  const client = tracker.wrap(claude(), { userId: 'hank' })
  const stream = await client.messages.create({ ...ask, stream: true })
  await assert.rejects(async () => {
    for await (const _ of stream) {
      // read until the connection breaks
    }
  })
  await tracker.flush()
  const e = await tracker.event('msg_cut')
  assert.ok(e, 'the cut-off stream is recorded under its message id')
  assert.equal(e.status, 'error')
  assert.equal(e.usage.input, 3000, 'the input tokens announced by message_start are kept')
  assert.deepEqual(await held('hank'), ['0'])
})

test('a stream the caller abandons is recorded as abandoned and its hold released', async () => {
  await tracker.setQuota({ id: 'ivy-daily', subject: { kind: 'user', id: 'ivy' }, metric: 'cost', limit: '10', window: { kind: 'day' } })
  fake.script.push({ sse: anthropic.stream({ id: 'msg_left', input: 1500, parts: ['a', 'b', 'c', 'd'] }) })
  const client = tracker.wrap(claude(), { userId: 'ivy' })
  const stream = await client.messages.create({ ...ask, stream: true })
  for await (const ev of stream) {
    if (ev.type === 'content_block_delta') break
  }
  await tracker.flush()
  const e = await tracker.event('msg_left')
  assert.equal(e.status, 'error')
  assert.equal(e.error_type, 'abandoned')
  assert.equal(e.usage.input, 1500)
  assert.deepEqual(await held('ivy'), ['0'])
})

test('openai chat: the response is unchanged and usage recorded', async () => {
  fake.script.push({ json: openai.completion() })
  const client = tracker.wrap(gpt(), { userId: 'jack' })
  const r = await client.chat.completions.create(chat)
  assert.equal(r.choices[0].message.content, 'Hi')
  await tracker.flush()
  const e = await tracker.event('chatcmpl-1')
  assert.deepEqual([e.usage.input, e.usage.output, e.user_id], [1000, 200, 'jack'])
  // $0.15/M input + $0.60/M output
  assert.equal(e.cost.total, '0.00027')
})

test('openai chat stream: usage is asked for, recorded, and hidden from the caller', async () => {
  // The fake answers like the API: usage fields only when stream_options.include_usage is set.
  fake.script.push((body) => ({ sse: openai.chunks(Boolean(body.stream_options && body.stream_options.include_usage)), done: true }))
  const client = tracker.wrap(gpt(), { userId: 'kate' })
  const stream = await client.chat.completions.create({ ...chat, stream: true })
  const seen = []
  for await (const chunk of stream) seen.push(chunk)
  assert.equal(fake.requests[0].body.stream_options.include_usage, true)
  // Exactly what the caller would have seen without the wrapper.
  const expected = openai.chunks(false).map((c) => c.data)
  assert.deepEqual(seen, expected)
  await tracker.flush()
  const e = await tracker.event('chatcmpl-s1')
  assert.deepEqual([e.usage.input, e.usage.output, e.status], [1000, 200, 'success'])
})

test('openai chat stream: a caller who asked for usage gets the usage chunk', async () => {
  fake.script.push({ sse: openai.chunks(true, { prompt: 10, completion: 5 }), done: true })
  const client = tracker.wrap(gpt(), { userId: 'liam' })
  const stream = await client.chat.completions.create({ ...chat, stream: true, stream_options: { include_usage: true } })
  const seen = []
  for await (const chunk of stream) seen.push(chunk)
  assert.deepEqual(seen, openai.chunks(true, { prompt: 10, completion: 5 }).map((c) => c.data))
  const t = await totals({ user_id: 'liam' })
  assert.deepEqual([t.input, t.output], [10, 5])
})

test('openai responses.create is recorded', async () => {
  fake.script.push({ json: openai.response() })
  const client = tracker.wrap(gpt(), { userId: 'mia' })
  const r = await client.responses.create({ model: 'gpt-4o-mini', input: 'Hello', max_output_tokens: 100 })
  assert.equal(r.id, 'resp_1')
  await tracker.flush()
  const e = await tracker.event('resp_1')
  assert.deepEqual([e.usage.input, e.usage.output, e.user_id], [1000, 200, 'mia'])
})

test('everything else on the client is the original', async () => {
  const raw = claude()
  const client = tracker.wrap(raw, { userId: 'x' })
  assert.equal(client.baseURL, raw.baseURL)
  assert.equal(client.apiKey, 'test-key')
  assert.equal(typeof client.messages.countTokens, 'function')
  assert.equal(client.models, raw.models)
  const o = tracker.wrap(gpt())
  assert.equal(typeof o.embeddings.create, 'function')
  assert.throws(() => tracker.wrap({}), TypeError)
})

test('the reservation uses the request max_tokens: a request that could pass the limit is refused', async () => {
  // 0.01 USD limit, nothing used: 256 output tokens fit, 100k (worst case $0.50) do not.
  await tracker.setQuota({ id: 'nora-daily', subject: { kind: 'user', id: 'nora' }, metric: 'cost', limit: '0.01', window: { kind: 'day' } })
  fake.script.push({ json: anthropic.message({}, { id: 'msg_small' }) })
  const client = tracker.wrap(claude(), { userId: 'nora' })
  await client.messages.create(ask)
  await assert.rejects(client.messages.create({ ...ask, max_tokens: 100000 }), (e) => e.code === 'QUOTA_EXCEEDED' && e.requested !== undefined)
  assert.equal(fake.requests.length, 1)
})
