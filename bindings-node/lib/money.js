'use strict'
// Money is an exact decimal string everywhere in this package ("0.012345678"). These helpers
// do exact arithmetic on such strings (in Rust, with rust_decimal), so nothing is ever rounded
// through a binary float by accident. `toNumber` is the one lossy conversion, and says so.

const native = require('./native')
const { sync } = require('./errors')

const str = (v) => (typeof v === 'string' ? v : String(v))

module.exports = {
  /** `a + b` exactly. */
  add: (a, b) => sync(() => native.decimalAdd(str(a), str(b))),
  /** `a - b` exactly. */
  sub: (a, b) => sync(() => native.decimalSub(str(a), str(b))),
  /** The exact sum of decimal strings. */
  sum: (values) => sync(() => native.decimalSum(values.map(str))),
  /** -1, 0 or 1 (`"0.50"` equals `"0.5"`). */
  compare: (a, b) => sync(() => native.decimalCompare(str(a), str(b))),
  /** Rounded to `places` decimals, half to even. */
  round: (value, places) => sync(() => native.decimalRound(str(value), places)),
  /** Whole cents as a BigInt, rounded half to even. */
  toCents: (usd) => BigInt(sync(() => native.toCents(str(usd)))),
  /** A float for display or charts: LOSSY (binary floating point); never add these up. */
  toNumber: (usd) => Number(usd),
}
