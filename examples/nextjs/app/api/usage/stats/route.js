// GET /api/usage/stats?days=30 — the caller's totals: requests, tokens, cost (exact USD strings).
import { forUser, lastDays } from '../../../../lib/usage.js'

export const runtime = 'nodejs'
export const dynamic = 'force-dynamic'

export async function GET(request) {
  return forUser(request, async (t, userId) => {
    const range = lastDays(request)
    const s = await t.summary({ range }, ['model'])
    return Response.json({
      user: userId,
      range: s.range,
      requests: s.totals.requests,
      errors: s.totals.errors,
      tokens: {
        input: s.totals.input,
        cache_read: s.totals.cache_read,
        cache_write: s.totals.cache_write_5m + s.totals.cache_write_1h,
        output: s.totals.output,
      },
      cost_usd: s.totals.cost_total,
      avg_cost_per_request_usd: s.avg_cost_per_request,
      models_used: s.distinct.model ?? 0,
      latency_avg_ms: s.latency_avg_ms,
    })
  })
}
