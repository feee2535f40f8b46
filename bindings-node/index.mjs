// ESM entry: the same objects as the CommonJS entry (one addon instance, one AsyncLocalStorage).
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const api = require('./index.js')

export const {
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
  run,
  currentContext,
  usd,
  version,
} = api
export default api
