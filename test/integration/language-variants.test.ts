import { describe, expect, it } from 'vitest';
import { useRig } from '../helpers/rig.js';

const rig = useRig();

describe('responses that vary on Accept-Language (RFC 9111 §4.1)', () => {
  it('serves one stored variant to requests listing the same equally weighted languages in another order', async () => {
    const proxy = await rig.start((request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60', vary: 'Accept-Language' });
      response.end(`for ${request.headers['accept-language']}`);
    });
    const origin = rig.origin;
    await proxy.fetch('/l', { headers: { 'accept-language': 'en, de' } });
    const reordered = await proxy.fetch('/l', { headers: { 'accept-language': 'de, en' } });
    expect(reordered.body).toBe('for en, de');
    expect(origin.hits()).toBe(1);

    const otherWeights = await proxy.fetch('/l', { headers: { 'accept-language': 'de, en;q=0.5' } });
    expect(otherWeights.body).toBe('for de, en;q=0.5');
    expect(origin.hits()).toBe(2);
  });
});
