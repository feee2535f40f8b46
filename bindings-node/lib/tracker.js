'use strict'
// `Tracker`: the JS face of the native tracker. Every store method returns a Promise resolved
// on napi's tokio runtime (the event loop never waits on the store). This layer only adapts
// types (Dates, typed errors, Node streams); every rule and default lives in Rust.

const { Readable } = require('node:stream')
const { pipeline } = require('node:stream/promises')

const native = require('./native')
const errors = require('./errors')
const { iso, dates } = require('./time')
const context = require('./context')

const call = errors.async
const sync = errors.sync
const json = errors.asyncJson
const syncJson = errors.syncJson

function isWritable(v) {
  return v && typeof v === 'object' && typeof v.write === 'function' && typeof v.on === 'function'
}

function warnRecordFailed(e) {
  process.emitWarning(`usage-core: a wrapped call could not be recorded: ${e.message}`, {
    code: 'USAGE_CORE_RECORD_FAILED',
    detail: e.code,
  })
}

class Tracker {
  /** @internal use `Tracker.open()`. */
  constructor(inner, pending) {
    this._inner = inner
    // Bookkeeping of wrapped calls still being written; `flush()` and `close()` wait for it.
    this._pending = pending || new Set()
  }

  /** Opens `sqlite://PATH`, `postgres://…` or `memory://`. */
  static async open(url, options = {}) {
    const { catalog, ...rest } = options
    const opts = { ...rest }
    if (catalog !== undefined) opts.catalog = catalog.toJson()
    return new Tracker(await call(native.NativeTracker.open(url, opts)))
  }

  /** A handle that only reads and writes `userId`'s events. */
  forUser(userId) {
    return new Tracker(sync(() => this._inner.forUser(userId)), this._pending)
  }

  /** A handle confined to `{ user_id, tags }`. */
  scoped(scope) {
    return new Tracker(sync(() => this._inner.scoped(scope)), this._pending)
  }

  /** This handle's scope (`{}`-like when unscoped). */
  get scope() {
    return JSON.parse(this._inner.scope())
  }

  /** The catalog events are priced with (a copy: change it, then `setCatalog()`). */
  catalog() {
    const { Catalog } = require('./catalog')
    return new Catalog(this._inner.catalog())
  }

  /** Replaces the catalog for events recorded from now on (stored costs are kept; see `reprice`). */
  setCatalog(catalog) {
    this._inner.setCatalog(catalog._inner)
  }

  /** Worst-case estimate of a request, priced with this tracker's catalog. */
  estimate(model, promptTokens, maxTokens, options) {
    return syncJson(() => this._inner.estimate(model, promptTokens, maxTokens, dates(options)))
  }

  record(event) {
    return json(this._inner.record(dates(event)))
  }

  recordMany(events) {
    return json(this._inner.recordMany(events.map(dates)))
  }

  enqueue(event) {
    return json(this._inner.enqueue(dates(event)))
  }

  /** Reads every usage record in a provider payload and records each durably. */
  recordResponse(provider, response, meta) {
    return json(this._inner.recordResponse(provider, response, meta && dates(meta)))
  }

  /** Waits for wrapped calls still being recorded, then writes everything queued. */
  async flush() {
    await this.settled()
    return call(this._inner.flush())
  }

  async close() {
    await this.settled()
    return call(this._inner.close())
  }

  /**
   * Resolves once every wrapped call finished so far has been recorded. A wrapped call whose
   * outcome could not be recorded (a store error) never fails the call itself: it is reported
   * here as a `USAGE_CORE_RECORD_FAILED` process warning.
   */
  async settled() {
    while (this._pending.size) await Promise.allSettled([...this._pending])
    await this._inner.settled()
    for (const text of this._inner.takeErrors()) warnRecordFailed(errors.fromJson(text))
  }

  /** @internal */
  _track(promise) {
    const p = promise.finally(() => this._pending.delete(p))
    this._pending.add(p)
    return p
  }

  query(query) {
    return json(this._inner.query(dates(query)))
  }

  summary(filter, distinct) {
    return json(this._inner.summary(dates(filter), distinct))
  }

  timeseries(filter, bucket, tz) {
    return json(this._inner.timeseries(dates(filter), bucket, tz))
  }

  breakdown(filter, by) {
    return json(this._inner.breakdown(dates(filter), by))
  }

  compare(filter, current, previous) {
    return json(this._inner.compare(dates(filter), dates(current), dates(previous)))
  }

  top(filter, by, metric, limit, offset) {
    return json(this._inner.top(dates(filter), by, metric, limit, offset))
  }

  event(id) {
    return json(this._inner.event(id))
  }

  /**
   * Recomputes rollups from raw events. `options`: `batchSize`, `signal` (an AbortSignal: the
   * run stops between batches and rolls back; its record says `outcome: 'cancelled'`), `onProgress({ done,
   * total })` after each batch.
   */
  rebuildRollups(range, options = {}) {
    return this._run(options, (control, progress) =>
      this._inner.rebuildRollups(dates(range), options.batchSize, control, progress),
    )
  }

  verifyRollups(range) {
    return json(this._inner.verifyRollups(dates(range)))
  }

  /** Recomputes stored costs under `catalog` (`dryRun`: report only); options as `rebuildRollups`. */
  reprice(catalog, options = {}) {
    return this._run(options, (control, progress) =>
      this._inner.reprice(dates(options.range), catalog._inner, Boolean(options.dryRun), options.batchSize, control, progress),
    )
  }

  /** Deletes raw events before `before` (a whole UTC hour), keeping rollups; options as `rebuildRollups`. */
  purge(before, options = {}) {
    return this._run(options, (control, progress) => this._inner.purge(iso(before), options.batchSize, control, progress))
  }

  /** A maintenance run with its AbortSignal and progress callback wired to the addon. */
  async _run(options, start) {
    const { signal, onProgress } = options
    let control
    let onAbort
    if (signal) {
      control = new native.RunControl()
      if (signal.aborted) control.cancel()
      onAbort = () => control.cancel()
      signal.addEventListener('abort', onAbort, { once: true })
    }
    const progress = onProgress ? (a, b) => onProgress(JSON.parse(typeof a === 'string' ? a : b)) : undefined
    try {
      return await json(start(control, progress))
    } finally {
      if (signal) signal.removeEventListener('abort', onAbort)
    }
  }

  runs(limit) {
    return json(this._inner.runs(limit))
  }

  setQuota(quota) {
    return call(this._inner.setQuota(quota))
  }

  quotas() {
    return json(this._inner.quotas())
  }

  deleteQuota(id) {
    return call(this._inner.deleteQuota(id))
  }

  quotaStatus(subjects) {
    return json(this._inner.quotaStatus(subjects))
  }

  check(subjects, estimate) {
    return json(this._inner.check(subjects, estimate))
  }

  reserve(subjects, estimate, options = {}) {
    return json(this._inner.reserve(subjects, estimate, options.ttlMs))
  }

  commit(reservationId, events) {
    return json(this._inner.commit(reservationId, events.map(dates)))
  }

  release(reservationId) {
    return call(this._inner.release(reservationId))
  }

  alerts(since, limit) {
    return json(this._inner.alerts(iso(since), limit))
  }

  /** Calls `callback(alert)` for every alert this process stores. */
  onAlert(callback) {
    this._inner.onAlert((err, json) => {
      // napi passes (null, value) to callee-unhandled callbacks on some versions and (value)
      // on others; take whichever argument is the JSON text.
      const text = typeof err === 'string' ? err : json
      callback(JSON.parse(text))
    })
  }

  forecast(filter, metric, window, tz, limit, options) {
    return json(this._inner.forecast(dates(filter), metric, window, tz, limit, options))
  }

  /**
   * Writes the events matching `filter` as CSV to `target`: a file path, or a Writable
   * stream (not ended). Resolves to the number of rows.
   */
  exportCsv(target, filter) {
    return this._export(target, filter, 'csv')
  }

  /** Like `exportCsv`, as JSON lines (one stored event per line). */
  exportJsonl(target, filter) {
    return this._export(target, filter, 'jsonl')
  }

  /**
   * A Readable of the export (`format`: `"csv"` or `"jsonl"`), produced with back-pressure.
   * When it ends, its `rows` property holds the number of rows written.
   */
  exportStream(filter, format = 'csv') {
    const inner = this._inner
    let readable
    async function* chunks() {
      const s = await call(inner.exportStream(dates(filter), format))
      for (;;) {
        const chunk = await call(s.next())
        if (chunk === null) {
          readable.rows = s.rows
          return
        }
        yield chunk
      }
    }
    readable = Readable.from(chunks(), { objectMode: false })
    readable.rows = null
    return readable
  }

  async _export(target, filter, format) {
    if (typeof target === 'string') {
      return Number(await call(this._inner.exportToFile(dates(filter), target, format)))
    }
    if (!isWritable(target)) {
      throw new TypeError('usage-core: export target must be a file path or a Writable stream')
    }
    const source = this.exportStream(filter, format)
    await pipeline(source, target, { end: false })
    return source.rows
  }

  /**
   * @internal the step API behind `wrap()`: a NativeCall, or a Promise of one when the
   * reservation had to wait on the store.
   */
  _beginCall(options) {
    let r
    try {
      r = this._inner.beginCall(options)
    } catch (e) {
      throw errors.convert(e)
    }
    return r && typeof r.then === 'function' ? call(r) : r
  }

  /**
   * Runs `fn` with `{ userId, tags }` as the identity of every wrapped call made inside it
   * (through `AsyncLocalStorage`).
   */
  run(ctx, fn) {
    return context.run(ctx, fn)
  }

  /** A client that records (and enforces quotas on) every message-create call. */
  wrap(client, options) {
    return require('./wrap').wrap(this, client, options)
  }
}

module.exports = { Tracker, warnRecordFailed }
