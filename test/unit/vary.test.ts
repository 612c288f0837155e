import { describe, expect, it } from 'vitest';
import { variantOf } from '../../proxy/cache/vary.js';

const lang = (value: string) => variantOf({ 'accept-language': value }, ['accept-language']);

describe('Accept-Language in a variant (RFC 9111 §4.1, RFC 9110 §12.5.4)', () => {
  it('ignores the order of equally weighted language ranges', () => {
    expect(lang('en, de')).toBe(lang('de, en'));
  });

  it('ignores case, spacing and how a weight is written', () => {
    expect(lang('en, de')).toBe(lang('eN ,   De'));
    expect(lang('en;q=0.50, de')).toBe(lang('de, en; q=0.5'));
  });

  it('keeps preferences of different weights apart', () => {
    expect(lang('en, de;q=0.5')).not.toBe(lang('de, en;q=0.5'));
    expect(lang('en')).not.toBe(lang('en, de'));
  });

  it('never merges an unreadable weight with a readable one', () => {
    expect(lang('en;q=x')).not.toBe(lang('en'));
  });
});
