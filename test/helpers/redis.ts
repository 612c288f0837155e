/** Tests start their own redis-server on a free loopback port; the measuring scripts use the same code. */
export { freePort, ping, REDIS_SERVER, startRedis, type TestRedis, type TestRedisOptions } from '../../scripts/bench/redis-server.js';
