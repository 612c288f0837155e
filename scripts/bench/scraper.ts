/**
 * A stand-in for Prometheus: GET /metrics at a fixed interval while a run
 * lasts, so the cost of rendering the registry counts in the figures
 * measured with metrics on. One scrape at a time; a slow scrape delays the
 * next rather than piling up.
 */

export interface ScrapeTally {
  readonly scrapes: number;
  readonly failures: number;
  readonly bytes: number;
}

export interface Scraper {
  /** Stops scraping and waits for a scrape under way to finish. */
  stop(): Promise<ScrapeTally>;
}

export function startScraper(url: string, intervalMs: number): Scraper {
  let scrapes = 0;
  let failures = 0;
  let bytes = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<void> = Promise.resolve();

  const scrape = async () => {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
      const text = await response.text();
      if (response.ok) {
        scrapes++;
        bytes += Buffer.byteLength(text);
      } else {
        failures++;
      }
    } catch {
      failures++;
    }
  };
  const tick = () => {
    current = scrape().then(() => {
      if (!stopped) timer = setTimeout(tick, intervalMs);
    });
  };
  tick();
  return {
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await current;
      return { scrapes, failures, bytes };
    },
  };
}
