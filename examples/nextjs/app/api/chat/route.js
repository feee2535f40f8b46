// POST /api/chat {"message": "..."} — asks Claude through the wrapped client. The call is
// reserved against the user's quota first: a blocked user gets 429 and Anthropic is not called.
import { isQuotaExceeded } from 'usage-core'
import { authenticate, claude, ensureQuota, tracker, unauthorized } from '../../../lib/usage.js'

export const runtime = 'nodejs'
export const dynamic = 'force-dynamic'

const MODEL = process.env.CHAT_MODEL ?? 'claude-haiku-4-5'

export async function POST(request) {
  const userId = authenticate(request)
  if (!userId) return unauthorized()
  const body = await request.json().catch(() => null)
  if (!body || typeof body.message !== 'string' || !body.message.trim()) {
    return Response.json({ error: 'send {"message": "..."}' }, { status: 400 })
  }
  await ensureQuota(userId)
  const [t, client] = await Promise.all([tracker(), claude()])
  try {
    // Every wrapped call inside run() is recorded under this user.
    const msg = await t.run({ userId, tags: { route: '/api/chat' } }, () =>
      client.messages.create({
        model: MODEL,
        max_tokens: 1024,
        messages: [{ role: 'user', content: body.message }],
      }),
    )
    const reply = msg.content.filter((b) => b.type === 'text').map((b) => b.text).join('')
    return Response.json({ reply, usage: msg.usage })
  } catch (e) {
    if (isQuotaExceeded(e)) {
      return Response.json(
        { error: 'quota_exceeded', quota: e.quota, limit_usd: e.limit, used_usd: e.used },
        { status: 429 },
      )
    }
    return Response.json({ error: 'upstream_error', message: e.message }, { status: 502 })
  }
}
