import { utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Writes a disk-tier lock by hand (its fields space-separated, as disk-lock.ts writes them), optionally last refreshed `ageMs` ago. */
export function writeLock(dir: string, fields: (string | number)[], ageMs = 0): string {
  const path = join(dir, 'lacquer.lock');
  writeFileSync(path, `${fields.join(' ')}\n`);
  if (ageMs > 0) age(path, ageMs);
  return path;
}

/** Sets a file's times `ageMs` into the past: how a lock's staleness is judged. */
export function age(path: string, ageMs: number): void {
  const then = new Date(Date.now() - ageMs);
  utimesSync(path, then, then);
}
