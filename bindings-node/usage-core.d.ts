// Types of the `usage-core` package (the JS layer in index.js/lib/). The native addon's own
// generated declarations are in index.d.ts.
//
// Conventions:
// - Money is an exact decimal string in USD (`Usd`, e.g. "0.012345678"): never a float. Use
//   `usd.add/sub/sum/compare/round/toCents` for arithmetic; `usd.toNumber` is the one lossy way out.
// - Other exact decimals (quota limits, used, held, thresholds) are decimal strings too.
// - Instants are returned as RFC 3339 strings in UTC with milliseconds ("2026-03-01T12:00:00.123Z");
//   arguments accept a `Date` or such a string anywhere an instant goes.
// - Core data (events, filters, totals, quotas) keeps the core's snake_case field names: the same
//   shape as the JSON-lines export and the Python package. Options bags are camelCase.

/// <reference types="node" />
import type { Writable, Readable } from 'node:stream'

export type Usd = string
export type Decimal = string
export type Instant = Date | string

// ---------------------------------------------------------------- errors

/** Every stable error code (`Error::code()` in Rust). */
export type ErrorCode =
  | 'UNKNOWN_MODEL'
  | 'INVALID_USAGE'
  | 'INVALID_CATALOG'
  | 'INVALID_RESPONSE'
  | 'INVALID_ARGUMENT'
  | 'QUOTA_EXCEEDED'
  | 'NOT_FOUND'
  | 'CANCELLED'
  | 'STORE_ERROR'

/**
 * An error raised by the core. `code` is stable; the other fields depend on it:
 * - UNKNOWN_MODEL: `model`
 * - INVALID_USAGE, INVALID_ARGUMENT: `field`, `reason`
 * - INVALID_CATALOG: `model`, `field`, `reason`
 * - INVALID_RESPONSE: `provider`, `field`, `reason`
 * - QUOTA_EXCEEDED: `quota`, `limit`, `used`, `requested` (decimal strings, in the quota's metric)
 * - NOT_FOUND: `kind`, `id`
 * - CANCELLED: `operation`
 * - STORE_ERROR: `backend` ("sqlite" | "postgres" | "memory" | "export"), `operation`, `source`
 */
export class UsageError extends Error {
  readonly code: ErrorCode
  readonly model?: string
  readonly field?: string
  readonly reason?: string
  readonly provider?: string
  readonly quota?: string
  readonly limit?: Decimal
  readonly used?: Decimal
  readonly requested?: Decimal
  readonly kind?: string
  readonly id?: string
  readonly operation?: string
  readonly backend?: string
  readonly source?: string
}

/** `code === 'QUOTA_EXCEEDED'`: the request would take the quota past its hard limit. */
export class QuotaExceededError extends UsageError {
  readonly code: 'QUOTA_EXCEEDED'
  readonly quota: string
  readonly limit: Decimal
  readonly used: Decimal
  readonly requested: Decimal
}

/** True for a QUOTA_EXCEEDED error, also when an SDK helper (messages.stream()) wrapped it as `cause`. */
export function isQuotaExceeded(error: unknown): boolean

// ---------------------------------------------------------------- core data

export type Provider =
  | 'anthropic' | 'openai' | 'gemini' | 'bedrock' | 'vertex' | 'deepseek' | 'mistral' | 'xai'
  | 'claude_code' | 'claude_cli'

export interface TokenUsage {
  input?: number
  cache_read?: number
  cache_write_5m?: number
  cache_write_1h?: number
  /** Output tokens, reasoning included. */
  output?: number
  /** Reasoning tokens (a part of `output`). */
  reasoning?: number
  web_search_requests?: number
  web_fetch_requests?: number
}

export interface PricingContext {
  service_tier?: 'standard' | 'batch' | 'flex' | 'priority' | string
  speed?: 'standard' | 'fast' | string
  inference_geo?: string | null
  platform?: string | null
  deployment?: string | null
}

/** Options of `cost()`: the instant the call happened (default now) and its pricing context. */
export interface CostOptions extends PricingContext {
  at?: Instant
}

export interface CostBreakdown {
  input: Usd
  cache_read: Usd
  cache_write_5m: Usd
  cache_write_1h: Usd
  output: Usd
  web_search: Usd
  /** The sum of the lines (each rounded once, half to even, to 1e-9 USD). */
  total: Usd
  basis: {
    model: string
    provider: string
    price_from: string | null
    tier_above: number | null
    platform: string
    modifiers: { kind: string; factor?: Decimal }[]
    catalog_version: string
    notes?: string[]
  }
}

/** One call's usage as read from a provider payload. */
export interface Extracted {
  provider: Provider
  model: string
  usage: Required<TokenUsage>
  context: PricingContext
  message_id: string | null
  request_id: string | null
  session_id: string | null
  timestamp: string | null
  complete: boolean
  billable: boolean
  error: { kind: string; message: string } | null
  provided_cost: Usd | null
  duration_ms: number | null
  num_turns: number | null
  sidechain: boolean
}

export interface NewEvent {
  id?: string
  timestamp?: Instant
  provider: string
  model: string
  usage?: TokenUsage
  context?: PricingContext
  provided_cost?: Usd
  latency_ms?: number
  duration_ms?: number
  status?: 'success' | 'error'
  error_type?: string
  error_message?: string
  user_id?: string
  tags?: Record<string, string>
}

export interface EventCost {
  input: Usd
  cache_read: Usd
  cache_write_5m: Usd
  cache_write_1h: Usd
  output: Usd
  web_search: Usd
  total: Usd
}

export interface UsageEvent {
  id: string
  timestamp: string
  provider: string
  model: string
  resolved_model: string | null
  usage: Required<TokenUsage>
  /** null when the event could not be priced (`unpriced_reason` says why). */
  cost: EventCost | null
  cost_source: 'catalog' | 'provided' | 'unpriced' | string
  unpriced_reason: string | null
  catalog_version: string | null
  latency_ms: number | null
  duration_ms: number | null
  status: 'success' | 'error'
  error_type: string | null
  error_message: string | null
  context: PricingContext
  user_id: string | null
  tags: Record<string, string>
}

export interface Alert {
  quota_id: string
  subject: Subject
  window_start: string
  threshold: string
  percent: Decimal
  used: Decimal
  limit: Decimal
  at: string
}

export interface Recorded {
  event: UsageEvent
  /** True when an event with this id was already stored: nothing was counted again. */
  duplicate: boolean
  breakdown: CostBreakdown | null
  /** Quota thresholds this write made usage cross (each fires once per quota and window). */
  alerts: Alert[]
}

export interface TimeRange {
  start: Instant
  end: Instant
}

export interface Filter {
  range?: TimeRange
  user_id?: string
  tags?: Record<string, string>
  model?: string
  provider?: string
  status?: 'success' | 'error'
}

/** `user`, `provider`, `model`, `status`, or a tag key (`tag:team` also works). */
export type Dimension = string
/** `hour`, `day`, `week` (`week:sunday`…), `month`. */
export type Bucket = string
/** `cost`, `requests`, `tokens`, `input_tokens`, `output_tokens`… */
export type Metric = string

export interface Totals {
  requests: number
  errors: number
  unpriced: number
  input: number
  cache_read: number
  cache_write_5m: number
  cache_write_1h: number
  output: number
  reasoning: number
  web_search_requests: number
  web_fetch_requests: number
  cost_input: Usd
  cost_cache_read: Usd
  cost_cache_write_5m: Usd
  cost_cache_write_1h: Usd
  cost_output: Usd
  cost_web_search: Usd
  cost_total: Usd
  latency_sum_ms: number
  latency_count: number
  duration_sum_ms: number
}

export interface Summary {
  range: TimeRange | null
  totals: Totals
  distinct: Record<string, number>
  avg_cost_per_request: Usd | null
  avg_tokens_per_request: number | null
  avg_cost_per_distinct: Record<string, Usd>
  latency_avg_ms: number | null
  total_duration_ms: number
  token_shares: { input: number; cache_read: number; cache_write: number; output: number }
  [more: string]: unknown
}

export interface Point {
  start: string
  end: string
  totals: Totals
}

export interface Share {
  key: string | null
  totals: Totals
  cost_share: number
  token_share: number
  request_share: number
}

export interface SharePage {
  by: string
  rows: Share[]
  total_rows: number
  totals: Totals
}

export interface Comparison {
  current_range: TimeRange | null
  previous_range: TimeRange | null
  current: Totals
  previous: Totals
  cost_delta: Usd
  cost_change: number | null
  requests_delta: number
  requests_change: number | null
  tokens_delta: number
  tokens_change: number | null
}

export interface Query {
  filter?: Filter
  group_by?: Dimension[] | unknown[]
  bucket?: { bucket: unknown; tz: string } | null
  distinct?: unknown[]
  fill_empty?: boolean
  sort?: [Metric, 'asc' | 'desc'] | null
  limit?: number | null
  offset?: number
}

export interface QueryResult {
  columns: string[]
  rows: { group: (string | null)[]; bucket: string | null; totals: Totals; distinct: Record<string, number> }[]
  total_rows: number
}

export type Subject = { kind: 'user'; id: string } | { kind: 'tag'; key: string; value: string } | { kind: 'global' }

export type Window =
  | { kind: 'day' }
  | { kind: 'week'; start: string }
  | { kind: 'month'; anchor_day: number }
  | { kind: 'year' }
  | { kind: 'rolling'; seconds: number }
  | { kind: 'lifetime' }

export type QuotaMetric = 'cost' | 'total_tokens' | 'input_tokens' | 'output_tokens' | 'requests' | string

export interface Threshold {
  name: string
  percent: Decimal
}

/** A quota to set: `tz` (default UTC), `hard` (default true) and `thresholds` (default warning 80 / upgrade_suggested 95 / blocked 100) come from the core when absent. */
export interface QuotaInput {
  id: string
  subject: Subject
  metric: QuotaMetric
  limit: Decimal | number
  window: Window
  tz?: string
  hard?: boolean
  thresholds?: Threshold[]
}

export interface Quota extends Required<Omit<QuotaInput, 'limit'>> {
  limit: Decimal
}

export interface Forecast {
  method: string
  basis_days: number
  burn_rate_per_day: Decimal
  projected: Decimal
  low: Decimal
  high: Decimal
  limit: Decimal | null
  period_end: string
  exhausted_at: string | null
  days_remaining: number | null
  [more: string]: unknown
}

export interface QuotaStatus {
  quota: Quota
  window: { start: string; resets_at: string | null; now: string }
  used: Decimal
  held: Decimal
  limit: Decimal
  remaining: Decimal
  /** A ratio for display (a float, never used for decisions). */
  percent: number
  level: string | null
  reached: string[]
  is_warning: boolean
  is_upgrade_suggested: boolean
  is_blocked: boolean
  forecast: Forecast | null
}

export interface Decision {
  allowed: boolean
  warnings: { quota_id: string; level: string; percent: number }[]
  blocked_by: unknown[]
}

export interface Estimate {
  usage: Required<TokenUsage>
  cost: Usd
}

export interface Reservation {
  id: string
  expires_at: string
  uses: unknown[]
}

export interface RunOptions {
  /** Rows per batch (core default 10,000). */
  batchSize?: number
  signal?: AbortSignal
  onProgress?: (progress: { done: number; total: number | null }) => void
}

export interface RunRecord {
  id: number
  kind: string
  range: TimeRange | null
  started_at: string
  finished_at: string
  rows: number
  outcome: string
  error: string | null
  detail: string | null
}

// ---------------------------------------------------------------- stateless API

/** Prices `usage` of `model` with the built-in catalog. Throws UNKNOWN_MODEL / INVALID_USAGE. */
export function cost(model: string, usage: TokenUsage, options?: CostOptions): CostBreakdown
/** Reads every usage record in a provider payload. Throws INVALID_RESPONSE naming the field. */
export function extract(provider: Provider | string, response: unknown): Extracted[]
/** The most a request can cost: the whole prompt as uncached input plus `maxTokens` of output. */
export function worstCaseEstimate(model: string, promptTokens: number, maxTokens: number, options?: CostOptions): Estimate
/** An estimate from a full usage (cache writes, tools), priced by the built-in catalog. */
export function pricedEstimate(model: string, usage: TokenUsage, options?: CostOptions): Estimate

export class Catalog {
  static builtin(): Catalog
  static fromJson(json: string | object): Catalog
  static fromLitellmJson(json: string | object, version: string): Catalog
  readonly version: string
  toJson(): string
  modelIds(): string[]
  resolve(model: string): string
  addModel(model: object): this
  merge(other: Catalog): this
  removeModel(id: string): boolean
  cost(model: string, usage: TokenUsage, options?: CostOptions): CostBreakdown
  worstCaseEstimate(model: string, promptTokens: number, maxTokens: number, options?: CostOptions): Estimate
}

export class StreamAccumulator {
  constructor(provider: Provider | string)
  push(event: unknown): void
  snapshot(): Extracted | null
  finish(): Extracted
}

/** Exact decimal arithmetic on money strings (done in Rust; nothing goes through a float). */
export const usd: {
  add(a: Usd, b: Usd): Usd
  sub(a: Usd, b: Usd): Usd
  sum(values: Usd[]): Usd
  compare(a: Usd, b: Usd): -1 | 0 | 1
  round(value: Usd, places: number): Usd
  /** Whole cents, rounded half to even. */
  toCents(value: Usd): bigint
  /** LOSSY: a float for display or charts. Never add these up. */
  toNumber(value: Usd): number
}

export function version(): string

// ---------------------------------------------------------------- identity

export interface CallContext {
  userId?: string
  tags?: Record<string, string>
  /** Quota subjects to reserve against (default: the user's and each tag's). */
  subjects?: Subject[]
}

/** Runs `fn` with `ctx` as the identity of every wrapped call made inside it (AsyncLocalStorage). */
export function run<T>(ctx: CallContext, fn: () => T): T
export function currentContext(): CallContext | undefined

// ---------------------------------------------------------------- tracker

export interface OpenOptions {
  /** The catalog to price with (default: the built-in one). */
  catalog?: Catalog
  /** Batched writer: most events per write. */
  maxBatch?: number
  /** Batched writer: longest wait before a partial batch is written, ms. */
  flushIntervalMs?: number
  /** Batched writer: most events queued before `enqueue` waits. */
  maxQueue?: number
}

export interface ResponseMetaInput {
  userId?: string
  tags?: Record<string, string>
  latencyMs?: number
  durationMs?: number
  model?: string
  timestamp?: Instant
  id?: string
}

export interface WrapOptions extends CallContext {
  /** How long a call's hold lasts if the process dies mid-call, ms (core default: 10 minutes). */
  ttlMs?: number
  /** Record calls that hold nothing through the batched writer (default true). */
  batched?: boolean
  /** Pricing context of the estimates (batch, priority, fast…). */
  pricing?: PricingContext
}

export class Tracker {
  /** Opens `sqlite://PATH`, `postgres://…` or `memory://`. */
  static open(url: string, options?: OpenOptions): Promise<Tracker>
  /** A handle that only reads and writes `userId`'s events (queries, quota status, exports). */
  forUser(userId: string): Tracker
  /** A handle confined to a user and/or tag values. */
  scoped(scope: { user_id?: string; tags?: Record<string, string> }): Tracker
  readonly scope: Filter
  /** A copy of the catalog events are priced with (change it, then `setCatalog()`). */
  catalog(): Catalog
  setCatalog(catalog: Catalog): void
  /** Worst-case estimate with this tracker's catalog. */
  estimate(model: string, promptTokens: number, maxTokens: number, options?: CostOptions): Estimate

  record(event: NewEvent): Promise<Recorded>
  recordMany(events: NewEvent[]): Promise<Recorded[]>
  /** Queues for the batched writer; durable after the next batch write (or `flush()`). */
  enqueue(event: NewEvent): Promise<UsageEvent>
  recordResponse(provider: Provider | string, response: unknown, meta?: ResponseMetaInput): Promise<Recorded[]>
  /** Waits for wrapped calls being recorded, then writes everything queued. */
  flush(): Promise<void>
  close(): Promise<void>
  /** Resolves once every wrapped call finished so far is recorded. */
  settled(): Promise<void>

  query(query: Query): Promise<QueryResult>
  summary(filter?: Filter, distinct?: Dimension[]): Promise<Summary>
  timeseries(filter: Filter, bucket: Bucket, tz: string): Promise<Point[]>
  breakdown(filter: Filter | undefined, by: Dimension): Promise<SharePage>
  compare(filter: Filter | undefined, current: TimeRange, previous: TimeRange): Promise<Comparison>
  top(filter: Filter | undefined, by: Dimension, metric: Metric, limit: number, offset?: number): Promise<SharePage>
  event(id: string): Promise<UsageEvent | null>

  /**
   * Recomputes rollups from raw events, in one transaction of batches. `signal` stops the run
   * between batches and rolls it back (the record then says `outcome: 'cancelled'`);
   * `onProgress` is called after each batch.
   */
  rebuildRollups(range?: TimeRange, options?: RunOptions): Promise<RunRecord>
  verifyRollups(range?: TimeRange): Promise<unknown[]>
  reprice(catalog: Catalog, options?: RunOptions & { range?: TimeRange; dryRun?: boolean }): Promise<{ report: unknown; run: RunRecord }>
  /** Deletes raw events before `before` (a whole UTC hour), keeping rollups, and forgets the reservations that ended before it (committed, released or expired; never an outstanding one). */
  purge(before: Instant, options?: RunOptions): Promise<RunRecord>
  runs(limit: number): Promise<RunRecord[]>

  setQuota(quota: QuotaInput): Promise<void>
  quotas(): Promise<Quota[]>
  deleteQuota(id: string): Promise<boolean>
  quotaStatus(subjects: Subject[]): Promise<QuotaStatus[]>
  check(subjects: Subject[], estimate: Estimate): Promise<Decision>
  /** Throws QuotaExceededError when a hard quota would be passed. */
  reserve(subjects: Subject[], estimate: Estimate, options?: { ttlMs?: number }): Promise<Reservation>
  commit(reservationId: string, events: NewEvent[]): Promise<Recorded[]>
  release(reservationId: string): Promise<boolean>
  alerts(since: Instant, limit: number): Promise<Alert[]>
  onAlert(callback: (alert: Alert) => void): void
  forecast(
    filter: Filter | undefined,
    metric: QuotaMetric,
    window: Window,
    tz: string,
    limit?: Decimal | null,
    options?: { lookback_days?: number; confidence?: number },
  ): Promise<Forecast>

  /** CSV (schema version 1) to a file path or a Writable (left open). Resolves to the row count. */
  exportCsv(target: string | Writable, filter?: Filter): Promise<number>
  exportJsonl(target: string | Writable, filter?: Filter): Promise<number>
  /** The export as a Readable, produced with back-pressure. */
  exportStream(filter?: Filter, format?: 'csv' | 'jsonl'): Readable & { rows: number | null }

  /** Runs `fn` with `ctx` as the identity of wrapped calls made inside it. */
  run<T>(ctx: CallContext, fn: () => T): T
  /**
   * The same client, with message-create calls guarded and recorded: `@anthropic-ai/sdk`
   * (`messages.create`, streaming or not, `messages.stream()`) and `openai`
   * (`chat.completions.create`, streaming or not, `responses.create`).
   */
  wrap<C extends object>(client: C, options?: WrapOptions): C
}
