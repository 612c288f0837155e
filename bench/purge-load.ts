import autocannon from 'autocannon';

/**
 * The load side of bench/purge-tag.ts, run as its own process so the load
 * generator does not share the proxy's event loop. Hits one URL for a
 * bounded time and prints every response's end time and latency as JSON.
 *
 *   node purge-load.js URL SECONDS CONNECTIONS
 */
const [url, seconds = '8', connections = '8'] = process.argv.slice(2);
if (url === undefined) throw new Error('usage: purge-load.js URL SECONDS CONNECTIONS');

const samples: [number, number][] = [];
const instance = autocannon({ url, duration: Number(seconds), connections: Number(connections) }, (error, result) => {
  if (error) throw error;
  process.stdout.write(JSON.stringify({ samples, requests: result.requests.total, errors: result.errors, non2xx: result.non2xx }));
});
instance.on('response', (_client: unknown, _status: number, _bytes: number, latencyMs: number) => {
  samples.push([Date.now(), latencyMs]);
});
