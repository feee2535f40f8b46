// GET /api/usage/quota — the caller's quotas with their flags (warning 80%, upgrade 95%, blocked 100%).
import { ensureQuota, forUser } from '../../../../lib/usage.js'

export const runtime = 'nodejs'
export const dynamic = 'force-dynamic'

export async function GET(request) {
  return forUser(request, async (t, userId) => {
    await ensureQuota(userId)
    const statuses = await t.quotaStatus([{ kind: 'user', id: userId }])
    return Response.json({
      user: userId,
      quotas: statuses.map((s) => ({
        id: s.quota.id,
        metric: s.quota.metric,
        limit: s.limit,
        used: s.used,
        held: s.held,
        remaining: s.remaining,
        percent: s.percent,
        level: s.level,
        is_warning: s.is_warning,
        is_upgrade_suggested: s.is_upgrade_suggested,
        is_blocked: s.is_blocked,
        resets_at: s.window.resets_at,
        projected: s.forecast?.projected ?? null,
      })),
    })
  })
}
