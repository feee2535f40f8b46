'use strict'
// `tracker.wrap(client)`: a Proxy over an `@anthropic-ai/sdk` or `openai` client that behaves
// exactly like the client, except that message-create calls are guarded and recorded:
//
//   estimate (core worst case) → beginCall (QUOTA_EXCEEDED before any request is sent)
//   → the SDK call → succeed (usage read by the core) | fail (error event, hold released)
//
// The SDKs' helpers (beta resources, parse(), stream(), runTools()) are the SDK's own code, run
// so that every request they send goes through a guarded create(), recorded once.
//
// Streams are handed back as the SDK's own Stream class, re-created around an iterator that
// feeds every event to the core's StreamAccumulator; a stream the caller abandons (breaks out
// of, aborts) or that breaks is recorded with the usage seen so far and its hold released.

const context = require('./context')
const native = require('./native')

const ABORTS = new Set(['AbortError', 'APIUserAbortError'])

/** Decides the identity of one call: `run()` context over the wrap options. */
function identity(opts) {
  const ctx = context.current()
  if (!ctx) {
    // No run() context: the wrap options alone, the same for every call.
    if (!opts._identity) opts._identity = who(opts, {})
    return opts._identity
  }
  return who(opts, ctx)
}

function who(opts, ctx) {
  const userId = ctx.userId !== undefined ? ctx.userId : opts.userId
  const tags = { ...(opts.tags || {}), ...(ctx.tags || {}) }
  // Without explicit subjects the core uses the call's user and tags.
  const subjects = ctx.subjects || opts.subjects
  const stringTags = Object.fromEntries(Object.entries(tags).map(([k, v]) => [k, String(v)]))
  return {
    userId: userId == null ? undefined : String(userId),
    tagsJson: JSON.stringify(stringTags),
    subjectsJson: subjects ? JSON.stringify(subjects) : undefined,
  }
}

/**
 * Rough prompt size by the core's rule (`usage_core::quota::estimate::prompt_rule`): the
 * characters (code points) of every string, a map's values but not under `data` (base64
 * payloads), nothing deeper than 64 levels, a quarter rounded up. Walked here rather than sent
 * to the core as JSON: a long conversation then costs microseconds, not a copy of all its text
 * and a parse. Values JSON would turn into something else (a Date, anything with toJSON()) are
 * counted as JSON turns them. The tests check it against the core on the shared cases.
 */
function approxPromptTokens(params) {
  const parts = [params.system, params.messages, params.tools, params.input, params.instructions]
  return Math.ceil(promptChars(parts, 0) / 4)
}

const SURROGATE = /[\uD800-\uDFFF]/

function promptChars(v, depth) {
  if (depth > 64) return 0
  if (typeof v === 'string') {
    if (!SURROGATE.test(v)) return v.length
    let n = 0
    for (const _ of v) n++ // code points: a surrogate pair is one
    return n
  }
  if (v === null || typeof v !== 'object') return 0
  if (typeof v.toJSON === 'function') return promptChars(JSON.parse(JSON.stringify(v)), depth)
  let n = 0
  if (Array.isArray(v)) {
    for (const x of v) n += promptChars(x, depth + 1)
    return n
  }
  for (const k of Object.keys(v)) if (k !== 'data') n += promptChars(v[k], depth + 1)
  return n
}

function errorType(e) {
  if (!e) return 'error'
  if (ABORTS.has(e.name) || ABORTS.has(e.constructor && e.constructor.name)) return 'aborted'
  const body = e.error
  return (
    (body && body.error && body.error.type) || // Anthropic APIError: { type: 'error', error: { type } }
    (typeof e.type === 'string' && e.type) || // OpenAI APIError
    (typeof e.code === 'string' && e.code) ||
    (e.status ? `http_${e.status}` : undefined) ||
    e.name ||
    'error'
  )
}

function message(e) {
  return (e && e.message) || String(e)
}

const { convert } = require('./errors')

function warn(e) {
  require('./tracker').warnRecordFailed(e)
}

const unread = new Map()

/**
 * A response or stream event as the JSON text the addon reads usage from: without the
 * top-level fields usage is never read from (the core's `Provider::unread_fields`: the
 * generated content), so a long answer is not serialised for nothing.
 */
function usageJson(provider, data) {
  if (data === null || typeof data !== 'object' || Array.isArray(data) || typeof data.toJSON === 'function') {
    return JSON.stringify(data)
  }
  let skip = unread.get(provider)
  if (!skip) {
    skip = new Set(native.unreadFields(provider))
    unread.set(provider, skip)
  }
  const kept = {}
  for (const key of Object.keys(data)) if (!skip.has(key)) kept[key] = data[key]
  return JSON.stringify(kept)
}

/**
 * Hands one outcome of a call (`succeed`, `fail`, `finishStream`) to the addon, which records
 * it on its runtime after this returns (`tracker.settled()`/`flush()` wait for it). A failure
 * to record never fails the caller's call.
 */
function record(tracker, step) {
  try {
    const r = step()
    if (r && typeof r.then === 'function') tracker._track(r.catch((e) => warn(convert(e))))
  } catch (e) {
    warn(convert(e))
  }
}

/**
 * What is specific to one SDK method: provider, the request's output cap, whether a stream
 * event is the first token, and (OpenAI Chat) how to ask for and hide the usage chunk.
 */
const METHODS = {
  anthropicMessages: {
    provider: 'anthropic',
    maxTokens: (p) => p.max_tokens,
    firstToken: (ev) => ev && ev.type !== 'message_start',
  },
  openaiChat: {
    provider: 'openai',
    maxTokens: (p) => p.max_completion_tokens ?? p.max_tokens,
    firstToken: () => true,
    // Streams only carry usage when asked; ask, and hide the extra chunk from the caller.
    prepare(p) {
      if (!p.stream || (p.stream_options && p.stream_options.include_usage)) return { params: p, hide: false }
      return { params: { ...p, stream_options: { ...(p.stream_options || {}), include_usage: true } }, hide: true }
    },
    hidden(ev) {
      return Array.isArray(ev.choices) && ev.choices.length === 0 && ev.usage != null
    },
  },
  openaiResponses: {
    provider: 'openai',
    maxTokens: (p) => p.max_output_tokens,
    firstToken: (ev) => ev && ev.type !== 'response.created' && ev.type !== 'response.in_progress',
  },
}

class Guarded {
  constructor(tracker, client, opts) {
    this.tracker = tracker
    this.client = client
    this.opts = { ...opts }
  }

  /**
   * A guarded `create(params, options)`: returns a promise with the APIPromise methods callers
   * and the SDKs' own helpers use (see asAPIPromise()).
   */
  create(spec, original, thisArg, params, options) {
    let api // the SDK's APIPromise, once the request is sent
    const data = this._run(spec, original, thisArg, params, options, (a) => (api = a))
    return asAPIPromise(data, () => api)
  }

  async _run(spec, original, thisArg, params, options, sent_) {
    const tracker = this.tracker
    const who = identity(this.opts)
    let call = tracker._beginCall({
      provider: spec.provider,
      model: params.model,
      promptTokens: approxPromptTokens(params),
      maxTokens: spec.maxTokens(params) ?? 0,
      pricing: this.opts.pricing,
      subjectsJson: who.subjectsJson,
      userId: who.userId,
      tagsJson: who.tagsJson,
      ttlMs: this.opts.ttlMs,
      batched: this.opts.batched ?? true,
    })
    if (typeof call.then === 'function') call = await call
    const { params: sent, hide } = spec.prepare ? spec.prepare(params) : { params, hide: false }
    let data
    try {
      const api = original.call(thisArg, sent, options)
      sent_(api)
      data = await api
    } catch (e) {
      record(tracker, () => call.fail(errorType(e), message(e)))
      throw e
    }
    if (params.stream) return this._stream(spec, call, data, hide)
    record(tracker, () => call.succeed(usageJson(spec.provider, data)))
    return data
  }

  /** The SDK's Stream class again, over an iterator that records as it goes. */
  _stream(spec, call, stream, hide) {
    const tracker = this.tracker
    let first = true
    async function* events() {
      let ended = false
      let failure
      let broken
      try {
        for await (const ev of stream) {
          if (first && spec.firstToken(ev)) {
            first = false
            call.firstToken()
          }
          if (!broken) {
            try {
              call.pushJson(usageJson(spec.provider, ev))
            } catch (e) {
              broken = e // a malformed event: record what was seen before it
            }
          }
          if (hide) {
            if (spec.hidden(ev)) continue
            if (ev.usage === null) delete ev.usage
          }
          yield ev
        }
        ended = true
      } catch (e) {
        failure = e
        throw e
      } finally {
        record(tracker, () =>
          ended
            ? call.finishStream(broken ? 'invalid_stream_event' : null, broken ? message(broken) : null)
            : failure
              ? call.finishStream(errorType(failure), message(failure))
              : call.finishStream('abandoned', 'the caller stopped reading the stream'),
        )
      }
    }
    const Stream = stream.constructor
    return new Stream(() => events(), stream.controller, this.client)
  }
}

/**
 * Gives `result` (a promise of what the caller gets) the APIPromise methods that callers and the
 * SDKs' own helpers use: `withResponse()`, `asResponse()` (`messages.stream()` reads the
 * response) and `_thenUnwrap()` (the `parse()` helpers). `sent()` is the SDK's APIPromise once
 * the request is sent: it keeps its parsed body and response, so asking it again sends nothing.
 */
function asAPIPromise(result, sent) {
  // A caller of these consumes the promises they return, not `result`: `result` must not then
  // report the same rejection as unhandled.
  result.withResponse = () => {
    result.catch(() => {})
    return result.then(async (d) => ({ ...(await sent().withResponse()), data: d }))
  }
  result.asResponse = () => {
    result.catch(() => {})
    return result.then(() => sent().asResponse())
  }
  // The SDK's own _thenUnwrap() over the body already read (and recorded): the transform
  // (parseChatCompletion()…) and the request id it adds are the SDK's, and a transform that
  // throws (LengthFinishReasonError) fails the caller's call, not the recording. The sent
  // APIPromise has memoized its parse, so its parseResponse is only read by that _thenUnwrap().
  result._thenUnwrap = (transform) => {
    result.catch(() => {})
    let unwrapped
    const out = result.then((d) => {
      const api = sent()
      api.parseResponse = async () => d
      unwrapped = api._thenUnwrap(transform)
      return unwrapped
    })
    return asAPIPromise(out, () => unwrapped)
  }
  return result
}

/** Proxies `target`, replacing the properties in `overrides` and binding the target's methods. */
function proxy(target, overrides) {
  const bound = new WeakMap()
  return new Proxy(target, {
    get(t, prop, receiver) {
      if (Object.prototype.hasOwnProperty.call(overrides, prop)) return overrides[prop]()
      const v = Reflect.get(t, prop, t)
      if (typeof v !== 'function' || prop === 'constructor') return v
      // SDK classes use private fields: call their methods on the real object.
      let b = bound.get(v)
      if (!b) {
        b = v.bind(t)
        bound.set(v, b)
      }
      return b
    },
  })
}

function method(guarded, spec, target, name) {
  const original = target[name]
  return (params, options) => guarded.create(spec, original, target, params, options)
}

/**
 * The SDK's own helper methods `names` of `resource`, run with `this` = `resource` seen through
 * `fields` (a guarded `create`, or a `_client` that is the wrapped client): the requests they
 * send then go through the guarded create(), and what they return (MessageStream,
 * ChatCompletionStream, parsed messages…) is the SDK's, unchanged. Overrides for proxy().
 */
function helpers(resource, fields, names) {
  const self = Object.create(resource, Object.fromEntries(Object.entries(fields).map(([k, value]) => [k, { value }])))
  const overrides = {}
  for (const name of names) {
    const original = resource[name]
    if (typeof original !== 'function') continue // not in this SDK version
    const helper = (...args) => original.apply(self, args)
    overrides[name] = () => helper
  }
  return overrides
}

/** `client.messages` or `client.beta.messages`: create() guarded, and the helpers over it. */
function wrapMessages(guarded, messages) {
  const create = method(guarded, METHODS.anthropicMessages, messages, 'create')
  // stream() (MessageStream.createMessage(this, …)) and parse() (this.create(…).then(…)) send
  // through `this.create`.
  return proxy(messages, { create: () => create, ...helpers(messages, { create }, ['stream', 'parse']) })
}

function wrapAnthropic(guarded, client, overrides) {
  const wrappedMessages = wrapMessages(guarded, client.messages)
  overrides.messages = () => wrappedMessages
  const beta = client.beta
  if (beta && beta.messages && typeof beta.messages.create === 'function') {
    const wrappedBetaMessages = wrapMessages(guarded, beta.messages)
    const wrappedBeta = proxy(beta, { messages: () => wrappedBetaMessages })
    overrides.beta = () => wrappedBeta
  }
  return proxy(client, overrides)
}

function wrapOpenAI(guarded, client, overrides) {
  // The helpers are handed `this._client` and send through its create(): parse() as
  // `client.chat.completions.create(…)._thenUnwrap(…)`, stream() and runTools() from a
  // ChatCompletionStream/runner built on `client` (one request per tool-loop turn), and the same
  // for responses. Run with the wrapped client as `_client`, each request they send is guarded.
  const completions = client.chat.completions
  const chatCreate = method(guarded, METHODS.openaiChat, completions, 'create')
  const completionsOverrides = { create: () => chatCreate }
  const wrappedCompletions = proxy(completions, completionsOverrides)
  const wrappedChat = proxy(client.chat, { completions: () => wrappedCompletions })
  overrides.chat = () => wrappedChat
  const wrapped = proxy(client, overrides)
  Object.assign(completionsOverrides, helpers(completions, { _client: wrapped }, ['parse', 'stream', 'runTools']))

  const responses = client.responses
  if (responses && typeof responses.create === 'function') {
    const respCreate = method(guarded, METHODS.openaiResponses, responses, 'create')
    const wrappedResponses = proxy(responses, {
      create: () => respCreate,
      ...helpers(responses, { _client: wrapped }, ['parse', 'stream']),
    })
    overrides.responses = () => wrappedResponses
  }
  // The beta Responses API (`POST /responses?beta=true`): the same request and response.
  const beta = client.beta
  if (beta && beta.responses && typeof beta.responses.create === 'function') {
    const betaCreate = method(guarded, METHODS.openaiResponses, beta.responses, 'create')
    const wrappedBetaResponses = proxy(beta.responses, { create: () => betaCreate })
    const wrappedBeta = proxy(beta, { responses: () => wrappedBetaResponses })
    overrides.beta = () => wrappedBeta
  }
  return wrapped
}

/**
 * Wraps an Anthropic or OpenAI client. `options`: `userId`, `tags`, `subjects` (default: the
 * user's and the tags' quota subjects), `ttlMs`, `batched` (default true: calls no quota holds
 * are recorded through the batched writer), `pricing` (`PricingContext` fields for estimates).
 */
function wrap(tracker, client, options = {}) {
  if (!client || typeof client !== 'object') throw new TypeError('usage-core: wrap() needs an SDK client')
  const guarded = new Guarded(tracker, client, options)
  const overrides = {}
  if (typeof client.withOptions === 'function') {
    // A client derived for other timeouts or headers sends calls too: wrap it the same way.
    const withOptions = (...args) => wrap(tracker, client.withOptions(...args), options)
    overrides.withOptions = () => withOptions
  }
  if (client.messages && typeof client.messages.create === 'function') return wrapAnthropic(guarded, client, overrides)
  if (client.chat && client.chat.completions && typeof client.chat.completions.create === 'function') {
    return wrapOpenAI(guarded, client, overrides)
  }
  throw new TypeError(
    'usage-core: wrap() supports @anthropic-ai/sdk (client.messages) and openai (client.chat.completions, client.responses) clients',
  )
}

module.exports = { wrap, approxPromptTokens }
