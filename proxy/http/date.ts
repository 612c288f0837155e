/**
 * HTTP-date (RFC 9110 §5.6.7): the preferred IMF-fixdate and the two
 * obsolete forms a recipient must still accept, and nothing else.
 *
 *   IMF-fixdate  Sun, 06 Nov 1994 08:49:37 GMT
 *   rfc850-date  Sunday, 06-Nov-94 08:49:37 GMT
 *   asctime      Sun Nov  6 08:49:37 1994
 *
 * JavaScript's Date.parse accepts far more ("… UTC", "… AEST", two-digit
 * years in the fixdate form, single-digit hours, dashes, missing commas),
 * and a cache that takes such a value as a date stores on an Expires the
 * sender never validly gave. A value that is not an HTTP-date is invalid:
 * an invalid Expires means "already expired" (RFC 9111 §5.3), an invalid
 * Date or Last-Modified is as if absent.
 *
 * Names of days, months and the GMT zone are matched without regard to
 * case: the grammar is case-sensitive, but a case slip leaves no doubt
 * about which instant is meant.
 */

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const SHORT_DAYS = new Set(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']);
const LONG_DAYS = new Set(['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday']);

const IMF_FIXDATE = /^([a-z]{3}), (\d{2}) ([a-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) gmt$/i;
const RFC850_DATE = /^([a-z]{6,9}), (\d{2})-([a-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) gmt$/i;
const ASCTIME_DATE = /^([a-z]{3}) ([a-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/i;

/**
 * Epoch milliseconds of an HTTP-date, or NaN when the value is not one.
 * `now` only resolves the century of an rfc850-date's two-digit year: a
 * year more than 50 years ahead of it is taken as the most recent past
 * year with those digits (RFC 9110 §5.6.7).
 */
export function parseHttpDate(value: string | undefined, now: number = Date.now()): number {
  if (value === undefined) return NaN;
  const text = value.trim();

  let match = IMF_FIXDATE.exec(text);
  if (match !== null) {
    const [, day, date, month, year, hour, minute, second] = match as unknown as string[];
    if (!SHORT_DAYS.has(day!.toLowerCase())) return NaN;
    return instant(Number(year), month!, Number(date), hour!, minute!, second!);
  }

  match = RFC850_DATE.exec(text);
  if (match !== null) {
    const [, day, date, month, shortYear, hour, minute, second] = match as unknown as string[];
    if (!LONG_DAYS.has(day!.toLowerCase())) return NaN;
    const currentYear = new Date(now).getUTCFullYear();
    let year = Math.floor(currentYear / 100) * 100 + Number(shortYear);
    if (year > currentYear + 50) year -= 100;
    return instant(year, month!, Number(date), hour!, minute!, second!);
  }

  match = ASCTIME_DATE.exec(text);
  if (match !== null) {
    const [, day, month, date, hour, minute, second, year] = match as unknown as string[];
    if (!SHORT_DAYS.has(day!.toLowerCase())) return NaN;
    return instant(Number(year), month!, Number(date!.trim()), hour!, minute!, second!);
  }
  return NaN;
}

function instant(year: number, monthName: string, date: number, hour: string, minute: string, second: string): number {
  const month = MONTHS.indexOf(monthName.toLowerCase());
  const h = Number(hour);
  const m = Number(minute);
  // 60 is a leap second (RFC 9110 §5.6.7 allows it in the grammar).
  const s = Number(second);
  if (month === -1 || date < 1 || h > 23 || m > 59 || s > 60) return NaN;
  const ms = Date.UTC(year, month, date, h, m, Math.min(s, 59));
  // Reject days the month does not have (31 Feb would otherwise roll into March).
  if (new Date(ms).getUTCDate() !== date) return NaN;
  return ms;
}
