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

test('usage is read without serialising the answer: content that JSON cannot hold is no obstacle', async () => {
  const client = claude()
  // What the SDK would return, with an answer JSON.stringify refuses (a BigInt) in `content`,
  // which usage is never read from: only the fields usage is read from are handed over.
  client.messages.create = async () => ({ ...anthropic.message({}, { id: 'msg_big' }), content: [{ type: 'text', n: 1n }] })
  const msg = await tracker.wrap(client, { userId: 'alice' }).messages.create(ask)
  assert.equal(msg.content[0].n, 1n)
  await tracker.flush()
  const e = await tracker.event('msg_big')
  assert.ok(e, 'the call is recorded')
  assert.deepEqual([e.usage.input, e.usage.output], [1000, 200])
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

// The SDKs' other ways to send a message: beta resources, parse() and stream() helpers, tool
// runners. Each must record every request it sends exactly once, and hand the caller what the
// plain client hands back.

/** What `call` returns on a plain client for the same canned responses, to compare against. */
async function plain(make, steps, call) {
  fake.script.push(...steps)
  const out = await call(make())
  fake.requests.length = 0
  return out
}

/** The event stored under `id`, checked to be a success recorded for `userId`. */
async function recorded(id, userId) {
  await tracker.flush()
  const e = await tracker.event(id)
  assert.ok(e, `an event is recorded under ${id}`)
  assert.equal(e.user_id, userId)
  assert.equal(e.status, 'success')
  return e
}

/** Every request the provider received is recorded, once. */
async function recordedOnce(userId, requests) {
  assert.equal(fake.requests.length, requests)
  assert.equal((await totals({ user_id: userId })).requests, requests)
}

const answerSchema = {
  type: 'object',
  properties: { answer: { type: 'number' } },
  required: ['answer'],
  additionalProperties: false,
}

test('anthropic beta.messages.create is recorded and returns what the plain client returns', async () => {
  const reply = () => ({ json: anthropic.message({}, { id: 'msg_beta' }) })
  const params = { ...ask, betas: ['token-efficient-tools-2025-02-19'] }
  const want = await plain(claude, [reply()], (c) => c.beta.messages.create(params))
  fake.script.push(reply())
  const client = tracker.wrap(claude(), { userId: 'beta-create' })
  const got = await client.beta.messages.create(params)
  assert.deepEqual(got, want)
  const e = await recorded('msg_beta', 'beta-create')
  assert.deepEqual([e.usage.input, e.usage.output], [1000, 200])
  await recordedOnce('beta-create', 1)
})

test('anthropic beta.messages.create with stream: true is recorded when the stream ends', async () => {
  fake.script.push({ sse: anthropic.stream({ id: 'msg_beta_s', input: 1200, output: 80 }) })
  const client = tracker.wrap(claude(), { userId: 'beta-stream' })
  const stream = await client.beta.messages.create({ ...ask, stream: true })
  assert.ok(stream instanceof (require('@anthropic-ai/sdk/streaming').Stream))
  const types = []
  for await (const ev of stream) types.push(ev.type)
  assert.equal(types.length, 7)
  const e = await recorded('msg_beta_s', 'beta-stream')
  assert.deepEqual([e.usage.input, e.usage.output], [1200, 80])
  await recordedOnce('beta-stream', 1)
})

test('anthropic beta.messages.stream(): finalMessage() and on("text") are the SDK\'s, usage is recorded', async () => {
  const reply = () => ({ sse: anthropic.stream({ id: 'msg_beta_h', input: 2000, output: 100, parts: ['Hi', ' you'] }) })
  const run = async (c) => {
    const texts = []
    const s = c.beta.messages.stream(ask).on('text', (t) => texts.push(t))
    return { texts, final: await s.finalMessage() }
  }
  const want = await plain(claude, [reply()], run)
  fake.script.push(reply())
  const got = await run(tracker.wrap(claude(), { userId: 'beta-helper' }))
  assert.deepEqual(got, want)
  assert.equal(got.final.content[0].text, 'Hi you')
  const e = await recorded('msg_beta_h', 'beta-helper')
  assert.deepEqual([e.usage.input, e.usage.output], [2000, 100])
  await recordedOnce('beta-helper', 1)
})

for (const beta of [false, true]) {
  const name = beta ? 'beta.messages.parse' : 'messages.parse'
  test(`anthropic ${name}(): parsed_output is the SDK's and the request is recorded once`, async () => {
    const id = beta ? 'msg_bparse' : 'msg_parse'
    const reply = () => ({ json: anthropic.message({}, { id, content: [{ type: 'text', text: '{"answer":4}' }] }) })
    const params = { ...ask, output_config: { format: { type: 'json_schema', schema: answerSchema } } }
    const parse = (c) => (beta ? c.beta.messages : c.messages).parse(params)
    const want = await plain(claude, [reply()], parse)
    fake.script.push(reply())
    const got = await parse(tracker.wrap(claude(), { userId: 'parser' }))
    assert.deepEqual(got.parsed_output, { answer: 4 })
    assert.deepEqual(got, want)
    assert.deepEqual(got.content[0].parsed_output, { answer: 4 })
    const e = await recorded(id, 'parser')
    assert.deepEqual([e.usage.input, e.usage.output], [1000, 200])
    await recordedOnce('parser', 1)
  })
}

test('openai chat.completions.parse(): the parsed message is the SDK\'s and the request is recorded once', async () => {
  const reply = () => ({ json: openai.completion({}, { id: 'chatcmpl-parse', content: '{"answer":4}' }) })
  // No max_completion_tokens: an unset cap must not trouble the wrapper.
  const params = {
    model: 'gpt-4o-mini',
    messages: chat.messages,
    response_format: { type: 'json_schema', json_schema: { name: 'answer', strict: true, schema: answerSchema } },
  }
  const want = await plain(gpt, [reply()], (c) => c.chat.completions.parse(params))
  fake.script.push(reply())
  const got = await tracker.wrap(gpt(), { userId: 'oparser' }).chat.completions.parse(params)
  assert.deepEqual(got.choices[0].message.parsed, { answer: 4 })
  assert.deepEqual(got, want)
  assert.equal(got._request_id, want._request_id)
  const e = await recorded('chatcmpl-parse', 'oparser')
  assert.deepEqual([e.usage.input, e.usage.output], [1000, 200])
  await recordedOnce('oparser', 1)
})

test('openai chat.completions.parse(): withResponse() works, and a reply the SDK refuses to parse is still recorded', async () => {
  const params = {
    model: 'gpt-4o-mini',
    messages: chat.messages,
    response_format: { type: 'json_schema', json_schema: { name: 'answer', strict: true, schema: answerSchema } },
  }
  const client = tracker.wrap(gpt(), { userId: 'cutoff' })
  fake.script.push({ json: openai.completion({}, { id: 'chatcmpl-pw', content: '{"answer":4}' }) })
  const { data, response } = await client.chat.completions.parse(params).withResponse()
  assert.deepEqual(data.choices[0].message.parsed, { answer: 4 })
  assert.equal(response.status, 200)
  // Cut off at max tokens: the SDK throws LengthFinishReasonError, yet the tokens were spent.
  const truncated = () => {
    const body = openai.completion({ completion_tokens: 256, total_tokens: 1256 }, { id: 'chatcmpl-len', content: '{"ans' })
    body.choices[0].finish_reason = 'length'
    return { json: body }
  }
  fake.script.push(truncated())
  await assert.rejects(client.chat.completions.parse(params), OpenAI.LengthFinishReasonError)
  const e = await recorded('chatcmpl-len', 'cutoff')
  assert.deepEqual([e.usage.input, e.usage.output], [1000, 256])
  await recordedOnce('cutoff', 2)
})

test('openai chat.completions.stream(): chunks and finalChatCompletion() are the SDK\'s, usage is recorded', async () => {
  const reply = () => (body) => ({
    sse: openai.chunks(Boolean(body.stream_options && body.stream_options.include_usage), { id: 'chatcmpl-cs' }),
    done: true,
  })
  const run = async (c) => {
    const chunks = []
    const s = c.chat.completions.stream(chat).on('chunk', (ch) => chunks.push(ch))
    return { chunks, final: await s.finalChatCompletion() }
  }
  const want = await plain(gpt, [reply()], run)
  fake.script.push(reply())
  const got = await run(tracker.wrap(gpt(), { userId: 'ostream' }))
  assert.equal(fake.requests[0].body.stream_options.include_usage, true)
  assert.deepEqual(got, want)
  assert.equal(got.final.choices[0].message.content, 'Hi there')
  const e = await recorded('chatcmpl-cs', 'ostream')
  assert.deepEqual([e.usage.input, e.usage.output], [1000, 200])
  await recordedOnce('ostream', 1)
})

const addTool = {
  type: 'function',
  function: {
    name: 'add',
    parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } } },
    function: ({ a, b }) => String(a + b),
    parse: JSON.parse,
  },
}
const addCall = { id: 'call_1', name: 'add', arguments: '{"a":2,"b":2}' }

test('openai chat.completions.runTools(): each request of the tool loop is recorded', async () => {
  const steps = () => [
    { json: openai.completion({}, { id: 'chatcmpl-t1', toolCalls: [{ id: addCall.id, type: 'function', function: { name: addCall.name, arguments: addCall.arguments } }] }) },
    { json: openai.completion({ prompt_tokens: 1300, completion_tokens: 20, total_tokens: 1320 }, { id: 'chatcmpl-t2', content: 'It is 4' }) },
  ]
  const run = async (c) => {
    const runner = c.chat.completions.runTools({ ...chat, tools: [addTool] })
    return { content: await runner.finalContent(), completions: runner.allChatCompletions(), usage: await runner.totalUsage() }
  }
  const want = await plain(gpt, steps(), run)
  fake.script.push(...steps())
  const got = await run(tracker.wrap(gpt(), { userId: 'tools' }))
  assert.equal(got.content, 'It is 4')
  assert.deepEqual(got, want)
  assert.equal(fake.requests[1].body.messages.at(-1).content, '4', 'the tool ran and its result was sent')
  const first = await recorded('chatcmpl-t1', 'tools')
  const second = await recorded('chatcmpl-t2', 'tools')
  assert.deepEqual([first.usage.input, second.usage.input, second.usage.output], [1000, 1300, 20])
  await recordedOnce('tools', 2)
})

test('openai chat.completions.runTools({ stream: true }): each streamed request is recorded', async () => {
  const asked = (body) => Boolean(body.stream_options && body.stream_options.include_usage)
  const steps = () => [
    (body) => ({ sse: openai.toolChunks(asked(body), { id: 'chatcmpl-ts1', call: addCall }), done: true }),
    (body) => ({ sse: openai.chunks(asked(body), { id: 'chatcmpl-ts2', parts: ['It is ', '4'], prompt: 1300, completion: 20 }), done: true }),
  ]
  const run = async (c) => {
    const chunks = []
    const runner = c.chat.completions.runTools({ ...chat, tools: [addTool], stream: true }).on('chunk', (ch) => chunks.push(ch))
    return { content: await runner.finalContent(), chunks }
  }
  const want = await plain(gpt, steps(), run)
  fake.script.push(...steps())
  const got = await run(tracker.wrap(gpt(), { userId: 'stools' }))
  assert.equal(got.content, 'It is 4')
  assert.deepEqual(got, want)
  const first = await recorded('chatcmpl-ts1', 'stools')
  const second = await recorded('chatcmpl-ts2', 'stools')
  assert.deepEqual([first.usage.input, second.usage.input, second.usage.output], [1000, 1300, 20])
  await recordedOnce('stools', 2)
})

test('openai responses.parse(): output_parsed is the SDK\'s and the request is recorded once', async () => {
  const reply = () => ({ json: openai.response({ id: 'resp_parse', text: '{"answer":4}' }) })
  const params = {
    model: 'gpt-4o-mini',
    input: 'What is 2+2?',
    text: { format: { type: 'json_schema', name: 'answer', strict: true, schema: answerSchema } },
  }
  const want = await plain(gpt, [reply()], (c) => c.responses.parse(params))
  fake.script.push(reply())
  const got = await tracker.wrap(gpt(), { userId: 'rparser' }).responses.parse(params)
  assert.deepEqual(got.output_parsed, { answer: 4 })
  assert.deepEqual(got, want)
  const e = await recorded('resp_parse', 'rparser')
  assert.deepEqual([e.usage.input, e.usage.output], [1000, 200])
  await recordedOnce('rparser', 1)
})

test('openai responses.stream(): events and finalResponse() are the SDK\'s, usage is recorded', async () => {
  const reply = () => ({ sse: openai.responseStream({ id: 'resp_s1', input: 900, output: 30 }) })
  const run = async (c) => {
    const deltas = []
    const s = c.responses.stream({ model: 'gpt-4o-mini', input: 'Hello' }).on('response.output_text.delta', (e) => deltas.push(e.snapshot))
    return { deltas, final: await s.finalResponse() }
  }
  const want = await plain(gpt, [reply()], run)
  fake.script.push(reply())
  const got = await run(tracker.wrap(gpt(), { userId: 'rstream' }))
  assert.deepEqual(got, want)
  assert.deepEqual(got.deltas, ['Hi', 'Hi there'])
  assert.equal(got.final.output_text, 'Hi there')
  const e = await recorded('resp_s1', 'rstream')
  assert.deepEqual([e.usage.input, e.usage.output], [900, 30])
  await recordedOnce('rstream', 1)
})

test('openai beta.responses.create is recorded', async () => {
  const reply = () => ({ json: openai.response({ id: 'resp_beta' }) })
  const params = { model: 'gpt-4o-mini', input: 'Hello', max_output_tokens: 100 }
  const want = await plain(gpt, [reply()], (c) => c.beta.responses.create(params))
  fake.script.push(reply())
  const got = await tracker.wrap(gpt(), { userId: 'rbeta' }).beta.responses.create(params)
  assert.deepEqual(got, want)
  assert.equal(fake.requests[0].url, '/v1/responses?beta=true')
  const e = await recorded('resp_beta', 'rbeta')
  assert.deepEqual([e.usage.input, e.usage.output], [1000, 200])
  await recordedOnce('rbeta', 1)
})

test('a client derived with withOptions() is wrapped the same way', async () => {
  fake.script.push({ json: anthropic.message({}, { id: 'msg_opts' }) }, { json: openai.completion({}, { id: 'chatcmpl-opts' }) })
  const c = tracker.wrap(claude(), { userId: 'derived' }).withOptions({ timeout: 5000 })
  assert.equal(c.timeout, 5000)
  await c.messages.create(ask)
  const o = tracker.wrap(gpt(), { userId: 'derived' }).withOptions({ timeout: 5000 })
  await o.chat.completions.create(chat)
  await recorded('msg_opts', 'derived')
  await recorded('chatcmpl-opts', 'derived')
  await recordedOnce('derived', 2)
})

test('the helpers are guarded too: a blocked user gets QUOTA_EXCEEDED and nothing is sent', async () => {
  await tracker.setQuota({ id: 'zed-daily', subject: { kind: 'user', id: 'zed' }, metric: 'cost', limit: '0.001', window: { kind: 'day' } })
  await tracker.record({ provider: 'anthropic', model: 'claude-haiku-4-5', usage: { input: 1000 }, user_id: 'zed' })
  const c = tracker.wrap(claude(), { userId: 'zed' })
  const o = tracker.wrap(gpt(), { userId: 'zed' })
  // The SDKs' stream and runner helpers wrap it as their own error, with it as `cause`.
  const blocked = (e) => isQuotaExceeded(e)
  await assert.rejects(c.beta.messages.create(ask), blocked)
  await assert.rejects(c.beta.messages.stream(ask).finalMessage(), blocked)
  await assert.rejects(c.messages.parse(ask), blocked)
  await assert.rejects(c.beta.messages.parse(ask), blocked)
  await assert.rejects(o.chat.completions.parse(chat), blocked)
  await assert.rejects(o.chat.completions.stream(chat).finalChatCompletion(), blocked)
  await assert.rejects(o.chat.completions.runTools({ ...chat, tools: [addTool] }).finalContent(), blocked)
  await assert.rejects(o.responses.parse({ model: 'gpt-4o-mini', input: 'Hello' }), blocked)
  await assert.rejects(o.responses.stream({ model: 'gpt-4o-mini', input: 'Hello' }).finalResponse(), blocked)
  await assert.rejects(o.beta.responses.create({ model: 'gpt-4o-mini', input: 'Hello' }), blocked)
  assert.equal(fake.requests.length, 0)
})

test('the prompt count walks the request in JS and agrees with the core on every shape', () => {
  const { approxPromptTokens } = require('../lib/wrap.js')
  const native = require('../lib/native')
  let deep = 'abcd'
  for (let i = 0; i < 63; i++) deep = [deep]
  const cases = [
    // The core's documented example: 50 characters, 13 tokens.
    {
      messages: [{ role: 'user', content: [
        { type: 'text', text: 'Describe this' },
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo...' } },
      ] }],
      system: 'Be brief.',
    },
    { messages: [{ role: 'user', content: 'é😀 naïve 𝄞' }] }, // code points, not UTF-16 units
    { input: [1, 2.5, true, null, undefined, { n: 3, when: new Date(0) }] },
    { messages: deep }, // at the core's depth limit
    { messages: [deep] }, // one level below it
    { tools: [{ name: 'f', input_schema: { type: 'object', properties: { data: { type: 'string' } } } }] },
    { instructions: 'x'.repeat(10_001), messages: Array.from({ length: 50 }, (_, i) => ({ role: 'user', content: `m${i}` })) },
  ]
  for (const params of cases) {
    const parts = [params.system, params.messages, params.tools, params.input, params.instructions]
    const core = native.approxPromptTokens(JSON.stringify(parts.map((p) => (p === undefined ? null : p))))
    assert.equal(approxPromptTokens(params), core, JSON.stringify(params).slice(0, 80))
  }
  assert.equal(approxPromptTokens(cases[0]), 13)
})
