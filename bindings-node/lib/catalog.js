'use strict'
// Pricing without a store: catalogs, `cost`, `extract`, estimates, stream accumulation.
// All synchronous (microseconds of CPU); errors are typed (`err.code`).

const native = require('./native')
const { sync, syncJson, convert } = require('./errors')
const { dates } = require('./time')

/** A price catalog: the built-in one, or loaded from JSON, with models added or removed. */
class Catalog {
  constructor(inner) {
    this._inner = inner
  }
  static builtin() {
    return new Catalog(native.Catalog.builtin())
  }
  static fromJson(json) {
    return new Catalog(sync(() => native.Catalog.fromJson(typeof json === 'string' ? json : JSON.stringify(json))))
  }
  static fromLitellmJson(json, version) {
    const text = typeof json === 'string' ? json : JSON.stringify(json)
    return new Catalog(sync(() => native.Catalog.fromLitellmJson(text, version)))
  }
  get version() {
    return this._inner.version
  }
  toJson() {
    return this._inner.toJson()
  }
  modelIds() {
    return this._inner.modelIds()
  }
  resolve(model) {
    return sync(() => this._inner.resolve(model))
  }
  addModel(model) {
    sync(() => this._inner.addModel(model))
    return this
  }
  merge(other) {
    sync(() => this._inner.merge(other._inner))
    return this
  }
  removeModel(id) {
    return this._inner.removeModel(id)
  }
  cost(model, usage, options) {
    return priceWith(this._inner, model, usage, options)
  }
  worstCaseEstimate(model, promptTokens, maxTokens, options) {
    return syncJson(() => this._inner.worstCaseEstimate(model, promptTokens, maxTokens, options && dates(options)))
  }
}

/** Accumulates a provider's stream events (SSE `data:` JSON or SDK events) into one record. */
class StreamAccumulator {
  constructor(provider) {
    this._inner = sync(() => new native.StreamAccumulator(provider))
  }
  push(event) {
    sync(() => this._inner.push(event))
  }
  snapshot() {
    return syncJson(() => this._inner.snapshot())
  }
  finish() {
    return syncJson(() => this._inner.finish())
  }
}

/**
 * Prices `usage` of `model` (with `catalog`, else the built-in one). `options`:
 * `{ at, ...PricingContext }`. The hot path: the fields are read here and cross as numbers.
 */
function priceWith(catalog, model, usage, options) {
  let at
  let context
  if (options != null) {
    at = options.at instanceof Date ? options.at.toISOString() : options.at
    for (const k in options) {
      if (k !== 'at') {
        context = options
        break
      }
    }
  }
  const u = usage || {}
  let text
  try {
    text = native.costParts(
      catalog,
      model,
      u.input,
      u.cache_read,
      u.cache_write_5m,
      u.cache_write_1h,
      u.output,
      u.reasoning,
      u.web_search_requests,
      u.web_fetch_requests,
      at,
      context,
    )
  } catch (e) {
    throw convert(e)
  }
  return JSON.parse(text)
}

/** Prices `usage` of `model` with the built-in catalog. `options`: `{ at, ...PricingContext }`. */
function cost(model, usage, options) {
  return priceWith(undefined, model, usage, options)
}

/** Reads every usage record in a provider payload. */
function extract(provider, response) {
  return syncJson(() => native.extract(provider, response))
}

/** The most a request can cost: whole prompt as uncached input plus `maxTokens` of output. */
function worstCaseEstimate(model, promptTokens, maxTokens, options) {
  return syncJson(() => native.worstCaseEstimate(model, promptTokens, maxTokens, options && dates(options)))
}

/** An estimate from a full usage, priced by the built-in catalog. */
function pricedEstimate(model, usage, options) {
  return syncJson(() => native.pricedEstimate(model, usage, options && dates(options)))
}

module.exports = { Catalog, StreamAccumulator, cost, extract, worstCaseEstimate, pricedEstimate }
