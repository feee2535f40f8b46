import path from 'node:path'
import { fileURLToPath } from 'node:url'

// usage-core is linked from ../../bindings-node (outside this folder): widen the root the
// bundler and the output tracing may read from to the repository.
const repo = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/** @type {import('next').NextConfig} */
const nextConfig = {
  // usage-core loads a native addon (usage-core.node): Node must require it at run time, the
  // bundler must not try to bundle it.
  serverExternalPackages: ['usage-core'],
  turbopack: { root: repo },
  outputFileTracingRoot: repo,
}

export default nextConfig
