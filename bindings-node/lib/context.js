'use strict'
// Per-request identity for wrapped calls: one middleware calls `run({ userId, tags }, next)`
// and every wrapped SDK call inside it is recorded under that identity.

const { AsyncLocalStorage } = require('node:async_hooks')

const storage = new AsyncLocalStorage()

/** Runs `fn` with `ctx` as the identity of wrapped calls made inside it (nested calls merge). */
function run(ctx, fn) {
  const outer = storage.getStore()
  const merged = outer
    ? {
        ...outer,
        ...ctx,
        tags: { ...(outer.tags || {}), ...(ctx.tags || {}) },
      }
    : ctx
  return storage.run(merged, fn)
}

/** The identity set by the innermost `run`, if any. */
function current() {
  return storage.getStore()
}

module.exports = { run, current }
