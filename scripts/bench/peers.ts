/**
 * Configurations for the targets, as pure functions of ports and paths so
 * they can be tested and shown in the report. Every listener is on
 * 127.0.0.1: the benchmark never opens a port beyond loopback.
 *
 * Fairness (each peer at its strongest reasonable setting):
 * - Varnish: malloc storage and its built-in VCL, as `varnishd -b` runs it.
 * - nginx: one worker, proxy_cache with proxy_cache_lock on (its coalescing),
 *   open_file_cache on (otherwise it reopens the cache file on every hit),
 *   tcp_nopush off (with sendfile it stalls keep-alive responses of ~100 KiB),
 *   keep-alive without a request cap, stale-while-revalidate honoured through
 *   proxy_cache_background_update.
 * - Lacquer: its defaults, with the memory and disk tiers sized to hold the
 *   scenarios (the default 1 GiB disk tier would evict some of the memory
 *   scenario's objects, from memory too).
 */

export const LOOPBACK = '127.0.0.1';

export interface PeerPorts {
  readonly port: number;
  readonly originPort: number;
}

export interface VarnishOptions extends PeerPorts {
  /** Working directory (varnishd -n); must be readable by Varnish's unprivileged user. */
  readonly workDir: string;
  readonly storageBytes: number;
}

/** varnishd arguments: foreground, loopback only, built-in VCL via -b, malloc storage, no management port. */
export function varnishArgs(options: VarnishOptions): string[] {
  return [
    '-F',
    '-n', options.workDir,
    '-a', `${LOOPBACK}:${options.port}`,
    '-b', `${LOOPBACK}:${options.originPort}`,
    '-s', `malloc,${Math.ceil(options.storageBytes / (1024 * 1024))}m`,
    '-T', 'none',
  ];
}

export interface NginxOptions extends PeerPorts {
  /** Prefix directory holding the config, cache, temp files and logs. */
  readonly dir: string;
  readonly cacheBytes: number;
  /** Set when running as root: workers then run as this user instead of nobody, so they can write the cache dir. */
  readonly user?: string;
  /**
   * Descriptors the worker may open (worker_rlimit_nofile). open_file_cache
   * keeps one per cached file, so its size is bounded by what is left after
   * the connections: past the limit nginx fails accept() and stalls.
   */
  readonly openFileLimit: number;
}

const NGINX_WORKER_CONNECTIONS = 4096;

/** Entries open_file_cache may hold within the descriptor limit (two per connection: client and upstream). */
export function nginxOpenFileCacheMax(openFileLimit: number): number {
  return Math.max(1000, Math.min(200_000, openFileLimit - 2 * NGINX_WORKER_CONNECTIONS - 1000));
}

export function nginxConfig(options: NginxOptions): string {
  const d = options.dir;
  return `# written by the Lacquer benchmark; loopback only
${options.user === undefined ? '' : `user ${options.user};\n`}worker_processes 1;
worker_rlimit_nofile ${options.openFileLimit};
daemon off;
master_process on;
pid ${d}/nginx.pid;
error_log ${d}/error.log warn;
events {
  worker_connections ${NGINX_WORKER_CONNECTIONS};
}
http {
  access_log off;
  sendfile on;
  tcp_nopush off;
  tcp_nodelay on;
  keepalive_timeout 65s;
  keepalive_requests 10000000;
  open_file_cache max=${nginxOpenFileCacheMax(options.openFileLimit)} inactive=120s;
  open_file_cache_valid 120s;
  open_file_cache_errors on;
  client_body_temp_path ${d}/client_temp;
  proxy_temp_path ${d}/proxy_temp;
  fastcgi_temp_path ${d}/fastcgi_temp;
  uwsgi_temp_path ${d}/uwsgi_temp;
  scgi_temp_path ${d}/scgi_temp;
  proxy_cache_path ${d}/cache levels=1:2 keys_zone=bench:64m max_size=${Math.ceil(options.cacheBytes / (1024 * 1024))}m inactive=1h use_temp_path=off;
  upstream origin {
    server ${LOOPBACK}:${options.originPort};
    keepalive 128;
  }
  server {
    listen ${LOOPBACK}:${options.port};
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache bench;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 10s;
      proxy_cache_use_stale updating error timeout;
      proxy_cache_background_update on;
      add_header X-Cache-Status $upstream_cache_status;
    }
  }
}
`;
}

export interface LacquerOptions {
  readonly memoryBytes: number;
  /** false writes `metrics.enabled: false`; absent or true leaves Lacquer's default (metrics on). */
  readonly metrics?: boolean;
  /** false: the memory tier alone (cache.disk.enabled: false), as Varnish's malloc storage. Default true, as users run it. */
  readonly disk?: boolean;
  /** Processes serving requests (`workers:`); absent leaves Lacquer's default, 1. */
  readonly workers?: number;
}

/** The YAML Lacquer reads; listen, admin and origin are given as flags, as a user would. */
/** Lacquer's default disk tier size; the bench's is never smaller, so the default largest object (256 MiB) fits. */
const DEFAULT_DISK_BYTES = 1024 ** 3;

export function lacquerConfig(options: LacquerOptions): string {
  return `# written by the Lacquer benchmark
cache:
  memory:
    maxSize: ${options.memoryBytes}
  disk:
${options.disk === false ? '    enabled: false' : `    maxSize: ${Math.max(options.memoryBytes, DEFAULT_DISK_BYTES)}`}
log:
  level: silent
${options.metrics === false ? 'metrics:\n  enabled: false\n' : ''}${options.workers === undefined ? '' : `workers: ${options.workers}\n`}`;
}
