// One tracker per server process, the wrapped Anthropic client, and bearer-token auth.
//
//   USAGE_DB_URL              where usage is stored (default sqlite://usage.db)
//   USAGE_API_TOKENS          "token:user,token:user" (demo auth; use your session/JWT instead)
//   USAGE_MONTHLY_LIMIT_USD   each user's monthly hard limit (default 5)
//   ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL   read by @anthropic-ai/sdk
import Anthropic from '@anthropic-ai/sdk'
import { Tracker } from 'usage-core'

const state = (globalThis.__usageCore ??= {})

/** The process's tracker (opened once; survives hot reloads in `next dev`). */
export function tracker() {
  state.tracker ??= Tracker.open(process.env.USAGE_DB_URL ?? 'sqlite://usage.db')
  return state.tracker
}

/** The Anthropic client, wrapped: every call is reserved against quotas and recorded. */
export async function claude() {
  const t = await tracker()
  state.claude ??= t.wrap(new Anthropic(), { tags: { app: 'nextjs-example' } })
  return state.claude
}

/** The user a request's bearer token names, or null. */
export function authenticate(request) {
  const header = request.headers.get('authorization') ?? ''
  const match = /^Bearer\s+(\S+)$/i.exec(header)
  if (!match) return null
  const tokens = new Map(
    (process.env.USAGE_API_TOKENS ?? '')
      .split(',')
      .map((pair) => pair.trim().split(':'))
      .filter((p) => p.length === 2 && p[0] && p[1]),
  )
  return tokens.get(match[1]) ?? null
}

export function unauthorized() {
  return Response.json({ error: 'unauthorized' }, { status: 401, headers: { 'www-authenticate': 'Bearer' } })
}

/** Makes sure the user has their monthly quota (created once per process). */
export async function ensureQuota(userId) {
  state.quotas ??= new Set()
  if (state.quotas.has(userId)) return
  const t = await tracker()
  const id = `${userId}-monthly`
  const existing = await t.quotas()
  if (!existing.some((q) => q.id === id)) {
    await t.setQuota({
      id,
      subject: { kind: 'user', id: userId },
      metric: 'cost',
      limit: process.env.USAGE_MONTHLY_LIMIT_USD ?? '5',
      window: { kind: 'month', anchor_day: 1 },
    })
  }
  state.quotas.add(userId)
}

/**
 * Runs a read for the authenticated user only: `fn` gets a tracker handle that cannot see any
 * other user's events, whatever the query asks.
 */
export async function forUser(request, fn) {
  const userId = authenticate(request)
  if (!userId) return unauthorized()
  const t = await tracker()
  return fn(t.forUser(userId), userId)
}

/** The last `days` days up to now (`?days=`, 1–366, default 30). */
export function lastDays(request, fallback = 30) {
  const raw = Number(new URL(request.url).searchParams.get('days') ?? fallback)
  const days = Number.isInteger(raw) && raw >= 1 && raw <= 366 ? raw : fallback
  const end = new Date()
  return { start: new Date(end.getTime() - days * 86400e3), end }
}
