'use strict'
// usage-core for Node: record, price, query and enforce quotas on LLM API calls in-process.
// CommonJS entry; `index.mjs` re-exports the same objects for ESM.

const native = require('./lib/native')
const { Tracker } = require('./lib/tracker')
const { Catalog, StreamAccumulator, cost, extract, worstCaseEstimate, pricedEstimate } = require('./lib/catalog')
const { UsageError, QuotaExceededError } = require('./lib/errors')
const context = require('./lib/context')
const usd = require('./lib/money')

/** True for a QUOTA_EXCEEDED error, also when an SDK helper wrapped it (as `cause`). */
function isQuotaExceeded(e) {
  for (let x = e, i = 0; x && i < 5; x = x.cause, i++) {
    if (x.code === 'QUOTA_EXCEEDED') return true
  }
  return false
}

module.exports = {
  Tracker,
  Catalog,
  StreamAccumulator,
  cost,
  extract,
  worstCaseEstimate,
  pricedEstimate,
  UsageError,
  QuotaExceededError,
  isQuotaExceeded,
  run: context.run,
  currentContext: context.current,
  usd,
  version: native.version,
}
