'use strict'
// A fake Anthropic + OpenAI API on 127.0.0.1 for the wrapper tests: canned JSON bodies and SSE
// streams, driven by a script of responses, recording every request it receives.

const http = require('node:http')

const NOW = 1763856000

const anthropic = {
  message(usage = {}, extra = {}) {
    return {
      id: 'msg_01',
      type: 'message',
      role: 'assistant',
      model: 'claude-haiku-4-5',
      content: [{ type: 'text', text: 'Hello there' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: {
        input_tokens: 1000,
        output_tokens: 200,
        cache_read_input_tokens: 0,
        cache_creation_input_tokens: 0,
        ...usage,
      },
      ...extra,
    }
  },
  /** A full SSE stream: the text arrives in `parts`, usage in message_start/message_delta. */
  stream({ id = 'msg_s1', input = 1000, output = 200, parts = ['Hel', 'lo'] } = {}) {
    const ev = (type, data) => ({ event: type, data: { type, ...data } })
    return [
      ev('message_start', {
        message: {
          id,
          type: 'message',
          role: 'assistant',
          model: 'claude-haiku-4-5',
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: input, output_tokens: 1, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
        },
      }),
      ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
      ...parts.map((text) => ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text } })),
      ev('content_block_stop', { index: 0 }),
      ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: output } }),
      ev('message_stop', {}),
    ]
  },
}

const openai = {
  completion(usage = {}, { id = 'chatcmpl-1', content = 'Hi', toolCalls } = {}) {
    const message = { role: 'assistant', content: toolCalls ? null : content, refusal: null }
    if (toolCalls) message.tool_calls = toolCalls
    return {
      id,
      object: 'chat.completion',
      created: NOW,
      model: 'gpt-4o-mini',
      choices: [{ index: 0, message, logprobs: null, finish_reason: toolCalls ? 'tool_calls' : 'stop' }],
      usage: { prompt_tokens: 1000, completion_tokens: 200, total_tokens: 1200, ...usage },
    }
  },
  /** Chat chunks as the API sends them: `usage: null` on each and a final usage chunk only when asked. */
  chunks(includeUsage, { id = 'chatcmpl-s1', parts = ['Hi', ' there'], prompt = 1000, completion = 200 } = {}) {
    const base = { id, object: 'chat.completion.chunk', created: NOW, model: 'gpt-4o-mini', system_fingerprint: null }
    const u = includeUsage ? { usage: null } : {}
    const out = [
      { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }], ...u },
      ...parts.map((content) => ({ ...base, choices: [{ index: 0, delta: { content }, finish_reason: null }], ...u })),
      { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], ...u },
    ]
    if (includeUsage) {
      out.push({ ...base, choices: [], usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } })
    }
    return out.map((data) => ({ data }))
  },
  /** Chat chunks of a response that calls one tool (`call`: { id, name, arguments }). */
  toolChunks(includeUsage, { id = 'chatcmpl-st', call, prompt = 1000, completion = 200 }) {
    const base = { id, object: 'chat.completion.chunk', created: NOW, model: 'gpt-4o-mini', system_fingerprint: null }
    const u = includeUsage ? { usage: null } : {}
    const head = { index: 0, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }
    const out = [
      { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: null, tool_calls: [head] }, finish_reason: null }], ...u },
      { ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: call.arguments } }] }, finish_reason: null }], ...u },
      { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }], ...u },
    ]
    if (includeUsage) {
      out.push({ ...base, choices: [], usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } })
    }
    return out.map((data) => ({ data }))
  },
  response({ id = 'resp_1', text = 'Hi', input = 1000, output = 200 } = {}) {
    return {
      id,
      object: 'response',
      created_at: NOW,
      status: 'completed',
      model: 'gpt-4o-mini',
      output: [
        { type: 'message', id: 'msg_o1', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text, annotations: [] }] },
      ],
      usage: {
        input_tokens: input,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: output,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: input + output,
      },
    }
  },
  /**
   * A Responses SSE stream with every event the SDK's ResponseStream needs to build its snapshot
   * (output_item.added, content_part.added before the deltas); usage arrives in response.completed.
   */
  responseStream({ id = 'resp_s1', parts = ['Hi', ' there'], input = 1000, output = 200 } = {}) {
    const done = openai.response({ id, text: parts.join(''), input, output })
    const started = { ...done, status: 'in_progress', output: [], usage: null }
    const item = { type: 'message', id: 'msg_o1', status: 'in_progress', role: 'assistant', content: [] }
    const part = { type: 'output_text', text: '', annotations: [] }
    const at = { item_id: 'msg_o1', output_index: 0, content_index: 0 }
    const events = [
      { type: 'response.created', response: started },
      { type: 'response.in_progress', response: started },
      { type: 'response.output_item.added', output_index: 0, item },
      { type: 'response.content_part.added', ...at, part },
      ...parts.map((delta) => ({ type: 'response.output_text.delta', ...at, delta, logprobs: [] })),
      { type: 'response.output_text.done', ...at, text: parts.join(''), logprobs: [] },
      { type: 'response.content_part.done', ...at, part: done.output[0].content[0] },
      { type: 'response.output_item.done', output_index: 0, item: done.output[0] },
      { type: 'response.completed', response: done },
    ]
    return events.map((data, sequence_number) => ({ event: data.type, data: { ...data, sequence_number } }))
  },
}

/** Starts the server. `fake.script` is a queue of `{ status, json }` / `{ sse, cutAfter }` / a function of the request body. */
async function startFake() {
  const fake = { requests: [], script: [] }
  const server = http.createServer((req, res) => {
    let raw = ''
    req.on('data', (c) => (raw += c))
    req.on('end', () => {
      const body = raw ? JSON.parse(raw) : null
      fake.requests.push({ method: req.method, url: req.url, body })
      let step = fake.script.shift()
      if (typeof step === 'function') step = step(body)
      if (step && step.delayMs) {
        const { delayMs, ...rest } = step
        fake.script.unshift(rest)
        setTimeout(() => req.emit('end'), delayMs)
        fake.requests.pop()
        return
      }
      if (!step) {
        res.writeHead(500, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ type: 'error', error: { type: 'api_error', message: 'no scripted response' } }))
        return
      }
      if (step.sse) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
        const events = step.cutAfter === undefined ? step.sse : step.sse.slice(0, step.cutAfter)
        for (const e of events) {
          if (e.event) res.write(`event: ${e.event}\n`)
          res.write(`data: ${JSON.stringify(e.data)}\n\n`)
        }
        if (step.cutAfter !== undefined) {
          // The connection breaks mid-stream.
          setTimeout(() => res.socket.destroy(), 10)
          return
        }
        if (step.done) res.write('data: [DONE]\n\n')
        res.end()
        return
      }
      res.writeHead(step.status || 200, { 'content-type': 'application/json', 'request-id': 'req_test' })
      res.end(JSON.stringify(step.json))
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  fake.url = `http://127.0.0.1:${server.address().port}`
  fake.close = () => new Promise((resolve) => server.close(resolve))
  return fake
}

module.exports = { startFake, anthropic, openai }
