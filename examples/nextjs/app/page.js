const routes = [
  ['GET', '/api/usage/stats', 'totals over the last 30 days'],
  ['GET', '/api/usage/quota', 'quota flags: warning, upgrade suggested, blocked'],
  ['GET', '/api/usage/history', 'daily cost and tokens, 30 days'],
  ['GET', '/api/usage/models', 'breakdown by model'],
  ['GET', '/api/usage/export', 'CSV export'],
  ['POST', '/api/chat', 'ask Claude (429 when over quota)'],
]

export default function Home() {
  return (
    <main style={{ fontFamily: 'system-ui', maxWidth: 720, margin: '2rem auto' }}>
      <h1>usage-core × Next.js</h1>
      <p>Every route needs <code>Authorization: Bearer &lt;token&gt;</code> and only ever shows the caller&apos;s own usage.</p>
      <ul>
        {routes.map(([method, path, what]) => (
          <li key={path}>
            <code>
              {method} {path}
            </code>{' '}
            — {what}
          </li>
        ))}
      </ul>
    </main>
  )
}
