/**
 * The validated, frozen configuration every other module receives.
 * Sizes are in bytes and durations in milliseconds once loaded; the YAML
 * file and the environment may spell them as "256MiB" or "30s".
 */

export interface ListenAddress {
  host: string;
  port: number;
}

export interface OriginOptions {
  /** Base URL of the origin. `null` starts the bundled example origin. */
  url: string | null;
  /** Send the client's Host header upstream instead of the origin's own host. Default false. */
  preserveHost: boolean;
  /** Most sockets the pool keeps open to the origin. Default 128. */
  connections: number;
  /** Time to establish a TCP connection. Default 5s. */
  connectTimeout: number;
  /** Time from sending the request to receiving the response headers. Default 30s. */
  headersTimeout: number;
  /** Longest pause between two body chunks. Default 30s. */
  bodyTimeout: number;
}

export interface MemoryTierOptions {
  /** Bytes the memory tier may hold (bodies + headers). Default 256MiB. */
  maxSize: number;
  /** Larger responses are streamed through and not stored. Default 8MiB. */
  maxObjectSize: number;
}

export interface DiskTierOptions {
  /** Keep entries on disk under the memory tier, across restarts. Default true. */
  enabled: boolean;
  /** The cache directory, relative to the working directory unless absolute. Default "var/cache". */
  path: string;
  /** Bytes the disk tier may hold (bodies + headers); least recently used go first. Default 1GiB. */
  maxSize: number;
  /** Larger responses are streamed through and not stored. Default 256MiB. */
  maxObjectSize: number;
}

export interface QueryKeyOptions {
  /** Sort query parameters so `?a=1&b=2` and `?b=2&a=1` share a key. Default true. */
  sort: boolean;
  /** Parameter names removed from the key and from the upstream request (e.g. utm_source). Default []. */
  drop: string[];
}

export interface CacheOptions {
  /** Name used in the Cache-Status header (RFC 9211). Default "lacquer". */
  name: string;
  memory: MemoryTierOptions;
  disk: DiskTierOptions;
  /** Most stored variants (Vary) per key; the oldest is dropped beyond it. Default 16. */
  maxVariants: number;
  /** Lifetime for cacheable responses that carry no freshness information. 0 disables. Default 0. */
  defaultTtl: number;
  /** Lifetime for 404/410 responses without explicit freshness. 0 disables. Default 0. */
  negativeTtl: number;
  /** Heuristic freshness (RFC 9111 §4.2.2) as a fraction of the Last-Modified age. Default 0.1. */
  heuristicFraction: number;
  /** Cap on a heuristic lifetime. Default 1d. */
  heuristicMaxTtl: number;
  /** ± fraction applied to lifetimes Lacquer assigns itself (default TTL, negative TTL, heuristic). Default 0.1. */
  jitter: number;
  /** stale-while-revalidate window assumed when the origin sends none. Default 0. */
  staleWhileRevalidate: number;
  /** stale-if-error window assumed when the origin sends none (grace when the origin fails; RFC 9111 §4.2.4 allows stale when disconnected). Default 10s. */
  staleIfError: number;
  /** How long an uncacheable key stays marked hit-for-miss (no request queueing). Default 30s. */
  hitForMissTtl: number;
  /** Responses carrying Set-Cookie: "pass" (not stored) or "strip" (stored without Set-Cookie). Default "pass". */
  setCookie: 'pass' | 'strip';
  /** Honour the client's request Cache-Control (no-cache, max-age, min-fresh, max-stale, only-if-cached, no-store). Default true. */
  honorRequestCacheControl: boolean;
}

export interface KeyOptions {
  query: QueryKeyOptions;
  /** Extra request headers made part of every key (lowercase). Default []. */
  headers: string[];
}

export interface RequestOptions {
  /**
   * Request headers removed before the request reaches the origin, because an
   * origin may act on them while they are not part of the key (cache poisoning).
   * A header named in `key.headers` is kept. Default: x-forwarded-host, x-original-url, …
   */
  stripHeaders: string[];
}

export interface TagOptions {
  /** Response headers that carry tags. Default ["surrogate-key", "cache-tag"]. */
  headers: string[];
  /** Remove the tag headers from responses sent to clients. Default true. */
  strip: boolean;
  /** Tags kept per stored response; the rest are ignored (each tag costs memory in the tag index). Default 256. */
  maxPerEntry: number;
}

export interface PurgeOptions {
  /** Bearer token a purge must carry (`Authorization: Bearer …`); LACQUER_PURGE_TOKEN sets it. null: only loopback clients (and `allow`) may purge. Default null. */
  token: string | null;
  /** Client addresses or CIDR ranges (10.0.0.0/8, ::1) that may purge without the token. Default []. */
  allow: string[];
  /** Accept the PURGE method on the proxy listener (Varnish style). Default true. */
  method: boolean;
  /** Request header listing tags on a PURGE request (lowercase). Default "surrogate-key". */
  tagHeader: string;
  /** Largest accepted POST /purge body, in bytes. Default 64KiB. */
  maxBodySize: number;
}

export interface LogOptions {
  level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export interface MetricsOptions {
  /** Serve GET /metrics on the admin listener and record the proxy's metrics. Default true. */
  enabled: boolean;
}

export interface RedisTlsOptions {
  /** PEM file of the certificate authority that signed the server's certificate; null uses Node's bundled CAs. Default null. */
  ca: string | null;
  /** PEM files of a client certificate and its key, for servers that require one (mutual TLS). Default null. */
  cert: string | null;
  key: string | null;
  /** Name checked against the server's certificate (SNI); null uses the URL's host. Default null. */
  servername: string | null;
  /** Refuse a server whose certificate does not verify. Default true. */
  rejectUnauthorized: boolean;
}

export interface RedisPurgeOptions {
  /** Entries the purge stream keeps (XADD MAXLEN ~): how far behind an instance may fall and still catch up. Default 100000. */
  retention: number;
  /** Purges kept here while Redis cannot take them; beyond it they fold into one purge of everything. Default 10000. */
  queueSize: number;
}

export interface RedisSharedOptions {
  /** Keep small entries in Redis under the local tiers, so instances share them and a new one starts warm. Default false. */
  enabled: boolean;
  /** Largest body kept in Redis, in bytes. Default 1MiB. */
  maxObjectSize: number;
  /** Longest wait for a shared lookup before it counts as a miss. Default 50ms. */
  timeout: number;
  /**
   * Cross-instance coalescing: an instance about to fetch a key takes a Redis
   * lock (SET NX PX) for this long; the others wait for its copy in the
   * shared tier, at most this long. 0 turns it off. Default 0.
   */
  lockTtl: number;
}

export interface RedisOptions {
  /**
   * `redis://[[username][:password]@]host[:port][/db]`, or `rediss://` for TLS
   * (the form node-redis takes); LACQUER_REDIS_URL sets it. null: no Redis,
   * every instance stands alone. Default null.
   */
  url: string | null;
  /** ACL user name, when not in the URL. Default null. */
  username: string | null;
  /** Password (ACL or requirepass), when not in the URL; LACQUER_REDIS_PASSWORD sets it. Default null. */
  password: string | null;
  /** Options for a `rediss://` connection. */
  tls: RedisTlsOptions;
  /** Put before every Redis key Lacquer writes, so several deployments can share one Redis. Default "lacquer:". */
  keyPrefix: string;
  /** Names this instance in the purge stream (its own entries are skipped); null: host name and listen port. Default null. */
  instanceId: string | null;
  /** Time to connect, and longest wait for one Redis command before the purge is queued instead. Default 5s. */
  connectTimeout: number;
  purge: RedisPurgeOptions;
  shared: RedisSharedOptions;
}
/**
 * Processes serving requests: 1 is a single process (no primary); N > 1 or
 * "auto" (one per available core) starts a primary that runs that many
 * workers sharing the listening sockets. Default 1. Read by the command
 * (proxy/cli.ts); startLacquer itself always runs in the calling process.
 */
export type Workers = number | 'auto';

export interface LimitOptions {
  /**
   * Time a client has to send its whole request head; a client dribbling
   * headers (slowloris) is answered 408 and disconnected after it. 0 = none. Default 15s.
   */
  headersTimeout: number;
  /** Time a client has to send its whole request, head and body. 0 = none. Default 5m. */
  requestTimeout: number;
}

export interface ShutdownOptions {
  /**
   * On SIGTERM/SIGINT, how long in-flight requests may run before their
   * connections are closed and the process exits. Default 10s.
   */
  drainTimeout: number;
}

export interface Config {
  workers: Workers;
  listen: ListenAddress;
  admin: ListenAddress;
  origin: OriginOptions;
  cache: CacheOptions;
  key: KeyOptions;
  request: RequestOptions;
  tags: TagOptions;
  purge: PurgeOptions;
  log: LogOptions;
  metrics: MetricsOptions;
  limits: LimitOptions;
  shutdown: ShutdownOptions;
  redis: RedisOptions;
}
