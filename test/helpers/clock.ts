/** A clock the test moves by hand, so freshness tests never sleep. Starts at the real time. */
export class TestClock {
  #now: number;

  constructor(start = Date.now()) {
    // Whole seconds, like HTTP dates, so Age arithmetic in tests is exact.
    this.#now = Math.floor(start / 1000) * 1000;
  }

  readonly now = (): number => this.#now;

  advance(seconds: number): void {
    this.#now += seconds * 1000;
  }
}
