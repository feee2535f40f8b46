// Node benchmarks of usage-core (issue 6). Run with a RELEASE build of the addon:
//   (cd ../../bindings-node && npm run build)   # release is the default profile
//   npm install && node bench.mjs
//
// 1. cost(): median time per call of usage-core's `cost()` and @pydantic/genai-prices'
//    `calcPrice()` on the same calls, measured in one run, interleaved round by round.
// 2. wrap() overhead: median time per call of the real @anthropic-ai/sdk client, with and
//    without `tracker.wrap()`, both against a `fetch` that answers at once from memory, so the
//    provider's time is excluded and the difference is the wrapper (estimate, beginCall,
//    usage extraction, recording). Recording goes through the batched writer (no quota held).
import Anthropic from '@anthropic-ai/sdk'
import { calcPrice } from '@pydantic/genai-prices'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Tracker, cost, usd } from 'usage-core'

const quick = process.argv.includes('--quick')

// ------------------------------------------------------------------ inputs
// The same calls for both libraries. genai-prices counts cached tokens inside input_tokens;
// usage-core counts them apart (input = uncached), so the two usages below describe one call.
const calls = [
  { model: 'claude-haiku-4-5', provider: 'anthropic', input: 1200, cache_read: 0, cache_write: 0, output: 300 },
  { model: 'claude-sonnet-4-5', provider: 'anthropic', input: 2000, cache_read: 8000, cache_write: 1000, output: 500 },
  { model: 'gpt-4o-mini', provider: 'openai', input: 1500, cache_read: 500, cache_write: 0, output: 250 },
  { model: 'gpt-4o', provider: 'openai', input: 900, cache_read: 0, cache_write: 0, output: 120 },
  { model: 'gemini-2.5-flash', provider: 'google', input: 3000, cache_read: 0, cache_write: 0, output: 800 },
]
const ours = calls.map((c) => ({
  model: c.model,
  usage: { input: c.input, cache_read: c.cache_read, cache_write_5m: c.cache_write, output: c.output },
}))
const theirs = calls.map((c) => ({
  model: c.model,
  usage: {
    input_tokens: c.input + c.cache_read + c.cache_write,
    cache_read_tokens: c.cache_read,
    cache_write_tokens: c.cache_write,
    output_tokens: c.output,
  },
  options: { providerId: c.provider },
}))
const at = new Date()
const opts = { at: at.toISOString() }
for (const t of theirs) t.options.timestamp = at

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}
function p90(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length * 0.9)]
}

// ------------------------------------------------------------------ 1. cost()
console.log('Same inputs, both libraries (usage-core exact / genai-prices float):')
for (let i = 0; i < calls.length; i++) {
  const a = cost(ours[i].model, ours[i].usage, opts).total
  const b = calcPrice(theirs[i].usage, theirs[i].model, theirs[i].options).total_price
  console.log(`  ${calls[i].model.padEnd(18)} ${a.padEnd(14)} ${b}`)
}

const BATCH = 1000
const ROUNDS = quick ? 40 : 300
let sink = 0
function timeBatch(fn) {
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < BATCH; i++) sink += fn(i % calls.length) ? 1 : 0
  return Number(process.hrtime.bigint() - t0) / BATCH / 1000 // µs per call
}
const runOurs = (i) => cost(ours[i].model, ours[i].usage, opts).total
const runTheirs = (i) => calcPrice(theirs[i].usage, theirs[i].model, theirs[i].options).total_price
for (let i = 0; i < 20; i++) {
  timeBatch(runOurs)
  timeBatch(runTheirs)
}
const costOurs = []
const costTheirs = []
for (let r = 0; r < ROUNDS; r++) {
  // Alternate which goes first so neither always runs on a warmer cache.
  if (r % 2) {
    costOurs.push(timeBatch(runOurs))
    costTheirs.push(timeBatch(runTheirs))
  } else {
    costTheirs.push(timeBatch(runTheirs))
    costOurs.push(timeBatch(runOurs))
  }
}
const mo = median(costOurs)
const mt = median(costTheirs)
console.log(`\ncost() per call, ${ROUNDS} rounds × ${BATCH} calls (median / p90):`)
console.log(`  usage-core cost()             ${mo.toFixed(2)} µs / ${p90(costOurs).toFixed(2)} µs   (target < 3 µs: ${mo < 3 ? 'PASS' : 'FAIL'})`)
console.log(`  @pydantic/genai-prices calc   ${mt.toFixed(2)} µs / ${p90(costTheirs).toFixed(2)} µs`)
console.log(`  ratio genai-prices / usage-core: ${(mt / mo).toFixed(1)}×`)

// ------------------------------------------------------------------ 2. wrap() overhead
const message = JSON.stringify({
  id: 'msg_bench',
  type: 'message',
  role: 'assistant',
  model: 'claude-haiku-4-5',
  content: [{ type: 'text', text: 'Hello! How can I help you today?' }],
  stop_reason: 'end_turn',
  stop_sequence: null,
  usage: { input_tokens: 1200, output_tokens: 300, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
})
let n = 0
// A provider that answers at once: each response gets a new id so every call is recorded.
const instantFetch = async () =>
  new Response(message.replace('msg_bench', `msg_bench_${n++}`), {
    status: 200,
    headers: { 'content-type': 'application/json', 'request-id': 'req_bench' },
  })
const raw = new Anthropic({ apiKey: 'bench', baseURL: 'http://127.0.0.1:9', fetch: instantFetch, maxRetries: 0 })
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'usage-core-bench-'))
const tracker = await Tracker.open(`sqlite://${path.join(dir, 'bench.db')}`)
const wrapped = tracker.wrap(raw, { userId: 'bench-user', tags: { route: '/bench' } })
const req = { model: 'claude-haiku-4-5', max_tokens: 1024, messages: [{ role: 'user', content: 'Hello, how are you?' }] }

const CALLS = 200
const WROUNDS = quick ? 10 : 60
async function timeCalls(client, request = req) {
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < CALLS; i++) await client.messages.create(request)
  return Number(process.hrtime.bigint() - t0) / CALLS / 1000
}
for (let i = 0; i < 5; i++) {
  await timeCalls(raw)
  await timeCalls(wrapped)
}
const tRaw = []
const tWrapped = []
for (let r = 0; r < WROUNDS; r++) {
  if (r % 2) {
    tRaw.push(await timeCalls(raw))
    tWrapped.push(await timeCalls(wrapped))
  } else {
    tWrapped.push(await timeCalls(wrapped))
    tRaw.push(await timeCalls(raw))
  }
}
// The same with a 50-turn conversation (about 55 KB of text) in the request: what the wrapper
// adds for a long prompt (it counts the prompt before it reserves).
const longReq = {
  ...req,
  messages: Array.from({ length: 50 }, (_, i) => ({
    role: i % 2 ? 'assistant' : 'user',
    content: 'lorem ipsum dolor sit amet '.repeat(40),
  })),
}
const longDiffs = []
for (let r = 0; r < Math.ceil(WROUNDS / 3); r++) {
  const a = await timeCalls(raw, longReq)
  longDiffs.push((await timeCalls(wrapped, longReq)) - a)
}
await tracker.flush()
const recorded = (await tracker.summary({ user_id: 'bench-user' })).totals
const mr = median(tRaw)
const mw = median(tWrapped)
// Per round, wrapped minus raw (adjacent, so they saw the same machine load).
const diffs = tWrapped.map((w, i) => w - tRaw[i])
console.log(`\nwrap() overhead, ${WROUNDS} rounds × ${CALLS} sequential calls, SQLite store, batched recording:`)
console.log(`  SDK alone (instant fetch)     ${mr.toFixed(1)} µs per call`)
console.log(`  SDK wrapped                   ${mw.toFixed(1)} µs per call`)
console.log(`  overhead                      ${(mw - mr).toFixed(1)} µs per call   (target < 50 µs: ${mw - mr < 50 ? 'PASS' : 'FAIL'})`)
console.log(`  per round (wrapped minus the raw round beside it): median ${median(diffs).toFixed(1)} µs, p90 ${p90(diffs).toFixed(1)} µs`)
console.log(`  with a 50-turn conversation in the request: overhead median ${median(longDiffs).toFixed(1)} µs per call`)
console.log(`  recorded: ${recorded.requests} calls, ${recorded.cost_total} USD (${usd.toCents(recorded.cost_total)} cents)`)
await tracker.close()
fs.rmSync(dir, { recursive: true, force: true })
if (sink < 0) console.log(sink)
