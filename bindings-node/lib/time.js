'use strict'
// Instants go into the addon as RFC 3339 strings: a `Date` anywhere in an argument is turned
// into its ISO string; strings pass through (the core parses and validates them).

function iso(v) {
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw new TypeError('usage-core: an Invalid Date was passed')
    return v.toISOString()
  }
  return v
}

/** A copy of `v` with every `Date` (at any depth of plain objects and arrays) as an ISO string. */
function dates(v) {
  if (v instanceof Date) return iso(v)
  if (Array.isArray(v)) return v.map(dates)
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const out = {}
    for (const k of Object.keys(v)) {
      if (v[k] !== undefined) out[k] = dates(v[k])
    }
    return out
  }
  return v
}

module.exports = { iso, dates }
