// GET /api/usage/history?days=30&tz=Europe/Paris — the caller's daily cost and tokens, empty days included.
import { forUser, lastDays } from '../../../../lib/usage.js'

export const runtime = 'nodejs'
export const dynamic = 'force-dynamic'

export async function GET(request) {
  return forUser(request, async (t, userId) => {
    const tz = new URL(request.url).searchParams.get('tz') ?? 'UTC'
    const points = await t.timeseries({ range: lastDays(request) }, 'day', tz)
    return Response.json({
      user: userId,
      tz,
      days: points.map((p) => ({
        start: p.start,
        requests: p.totals.requests,
        tokens: p.totals.input + p.totals.cache_read + p.totals.cache_write_5m + p.totals.cache_write_1h + p.totals.output,
        cost_usd: p.totals.cost_total,
      })),
    })
  })
}
