import type { DiskStoreOptions } from '../../proxy/store/disk.js';
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

/** What a store under test reported: its errors and log lines. */
export interface Seen {
  errors: unknown[];
  logs: string[];
}

/** Options for a small disk tier that claims `dir` again every `retryMs` while another holder keeps it (a worker's when `lockHolder` is given). */
export function waitingDiskOptions(dir: string, seen: Seen, retryMs: number, lockHolder?: number): DiskStoreOptions {
  return {
    dir,
    maxSize: 1 << 20,
    maxObjectSize: 1 << 20,
    maxVariants: 4,
    clock: () => 1_000_000,
    claimRetryMs: retryMs,
    onError: (error) => seen.errors.push(error),
    log: (line) => seen.logs.push(line),
    ...(lockHolder !== undefined && { shared: { lockHolder, since: 0, announce: () => undefined } }),
  };
}
