import { defaults } from '../../config/schema.js';
import type { Config } from '../../config/types.js';

/**
 * The whole of Lacquer's config for a test that starts it as main.ts wires
 * it: loopback on free ports, silent, in front of `originUrl`, with the
 * memory tier alone (a test that wants the disk tier gives it a directory
 * of its own, so tests never share one).
 */
export function wholeLacquerConfig(originUrl: string): Config {
  const config = defaults();
  config.listen = { host: '127.0.0.1', port: 0 };
  config.admin = { host: '127.0.0.1', port: 0 };
  config.origin.url = originUrl;
  config.log.level = 'silent';
  config.cache.disk.enabled = false;
  return config;
}
