// GET /api/usage/models?days=30 — the caller's usage by model, with shares.
import { forUser, lastDays } from '../../../../lib/usage.js'

export const runtime = 'nodejs'
export const dynamic = 'force-dynamic'

export async function GET(request) {
  return forUser(request, async (t, userId) => {
    const page = await t.breakdown({ range: lastDays(request) }, 'model')
    return Response.json({
      user: userId,
      total_cost_usd: page.totals.cost_total,
      models: page.rows.map((r) => ({
        model: r.key,
        requests: r.totals.requests,
        cost_usd: r.totals.cost_total,
        cost_share: r.cost_share,
      })),
    })
  })
}
