'use strict'
// Loads the native addon built by `npm install` (scripts/build.js). The path is a static
// string so that bundlers which follow a linked package into its source (Turbopack with
// `file:` dependencies) can see the addon and ship it with the server build.
let native
try {
  native = require('../usage-core.node')
} catch (e) {
  const err = new Error(
    `usage-core: cannot load the native addon usage-core.node (${e.message}). ` +
      'It is built from source when the package is installed: run `npm rebuild usage-core` ' +
      '(a Rust toolchain is needed), or `npm run build` inside bindings-node.',
  )
  err.code = 'ADDON_NOT_BUILT'
  err.cause = e
  throw err
}
module.exports = native
