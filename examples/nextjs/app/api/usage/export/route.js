// GET /api/usage/export?days=30 — the caller's events as CSV, streamed (memory stays flat).
import { Readable } from 'node:stream'
import { forUser, lastDays } from '../../../../lib/usage.js'

export const runtime = 'nodejs'
export const dynamic = 'force-dynamic'

export async function GET(request) {
  return forUser(request, async (t, userId) => {
    const csv = t.exportStream({ range: lastDays(request) }, 'csv')
    return new Response(Readable.toWeb(csv), {
      headers: {
        'content-type': 'text/csv; charset=utf-8',
        'content-disposition': `attachment; filename="usage-${userId}.csv"`,
      },
    })
  })
}
