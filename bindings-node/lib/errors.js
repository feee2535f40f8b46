'use strict'
// Rebuilds the core's errors as JS `Error`s with a stable `code` and the Rust fields. The
// addon sends them as JSON behind a prefix (bindings-node/src/error.rs).

const PREFIX = '__usage_core__:'

/** Every error the core raises: `code` is stable, the other fields depend on it. */
class UsageError extends Error {
  constructor(info) {
    super(info.message)
    this.name = 'UsageError'
    for (const [k, v] of Object.entries(info)) {
      if (k !== 'message') this[k] = v
    }
  }
}

/** `code === 'QUOTA_EXCEEDED'`: `quota`, `limit`, `used`, `requested` (decimal strings). */
class QuotaExceededError extends UsageError {
  constructor(info) {
    super(info)
    this.name = 'QuotaExceededError'
  }
}

const CLASSES = { QUOTA_EXCEEDED: QuotaExceededError }

/** The typed error for the JSON form of a core error. */
function fromJson(text) {
  const info = JSON.parse(text)
  const Cls = CLASSES[info.code] || UsageError
  return new Cls(info)
}

/** The typed error for an error thrown by the addon; other errors are returned unchanged. */
function convert(e) {
  if (!e || typeof e.message !== 'string' || !e.message.startsWith(PREFIX)) return e
  let info
  try {
    info = JSON.parse(e.message.slice(PREFIX.length))
  } catch {
    return e
  }
  const Cls = CLASSES[info.code] || UsageError
  const err = new Cls(info)
  // Keep the JS caller's stack, not the addon's.
  if (e.stack) err.stack = `${err.name} [${info.code}]: ${info.message}\n${e.stack.split('\n').slice(1).join('\n')}`
  return err
}

/** Calls a synchronous addon function, rethrowing its error typed. */
function sync(fn) {
  try {
    return fn()
  } catch (e) {
    throw convert(e)
  }
}

/** Awaits an addon promise, rethrowing its error typed. */
async function async_(promise) {
  try {
    return await promise
  } catch (e) {
    throw convert(e)
  }
}

/** `sync` for an addon function that returns JSON text (core values cross as JSON). */
function syncJson(fn) {
  return JSON.parse(sync(fn))
}

/** `async` for an addon promise of JSON text. */
async function asyncJson(promise) {
  return JSON.parse(await async_(promise))
}

module.exports = { UsageError, QuotaExceededError, convert, fromJson, sync, async: async_, syncJson, asyncJson }
