import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync, utimesSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { MARKER_CONTENT, MARKER_FILE } from '../../proxy/store/disk-files.js';
import { tempDir } from '../helpers/tempdir.js';

/*
 * Two processes claim one directory at the same moment, its lock left stale
 * by a holder in another PID namespace. Exactly one may take it; the other
 * must keep waiting (not hold it too, and not give up on its disk tier).
 * Each process is a disk store from the build (npm test builds first).
 */

const DISK = pathToFileURL(resolve('dist/proxy/store/disk.js')).href;
const ROUNDS = 30;
const root = tempDir('lacquer-disk-race-');

/** A process with one disk store at a time: {dir} opens one and answers its state once settled, {close} closes it. */
const CLAIMER = `
import { DiskStore } from ${JSON.stringify(DISK)};
let store;
const settled = async () => {
  await store.ready;
  const deadline = Date.now() + 20000;
  while (!store.inUse && store.waitingForDirectory && store.claimAttempts < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  return { inUse: store.inUse, waiting: store.waitingForDirectory };
};
process.on('message', async (message) => {
  if (message.dir !== undefined) {
    store = new DiskStore({ dir: message.dir, maxSize: 1 << 20, maxObjectSize: 1 << 20, maxVariants: 4, clock: Date.now, claimRetryMs: 1 });
    process.send({ state: await settled() });
  } else {
    await store.close();
    process.send({ closed: true });
  }
});
process.on('disconnect', () => process.exit(0));
process.send({ up: true });
`;

interface Claimer {
  readonly child: ChildProcess;
  next(): Promise<Record<string, unknown>>;
}

function startClaimer(): Claimer {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CLAIMER], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const inbox: Record<string, unknown>[] = [];
  const waiting: ((message: Record<string, unknown>) => void)[] = [];
  child.on('message', (message: Record<string, unknown>) => {
    const taker = waiting.shift();
    if (taker === undefined) inbox.push(message);
    else taker(message);
  });
  return {
    child,
    next: () => {
      const queued = inbox.shift();
      return queued !== undefined ? Promise.resolve(queued) : new Promise((done) => waiting.push(done));
    },
  };
}

const claimers: Claimer[] = [];
afterAll(() => {
  for (const { child } of claimers) child.disconnect();
});

describe('two processes taking over one stale lock at once', () => {
  it(`one holds the directory, the other waits for it (${ROUNDS} rounds)`, { timeout: 120_000 }, async () => {
    claimers.push(startClaimer(), startClaimer());
    await Promise.all(claimers.map((claimer) => claimer.next()));
    const outcomes: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const dir = join(root, String(round));
      mkdirSync(dir);
      writeFileSync(join(dir, MARKER_FILE), MARKER_CONTENT);
      // Another container's lock on this host, not refreshed for two minutes.
      const lock = join(dir, 'lacquer.lock');
      writeFileSync(lock, `1 ${hostname()} their-nonce pid:[1]\n`);
      const longAgo = new Date(Date.now() - 120_000);
      utimesSync(lock, longAgo, longAgo);

      for (const { child } of claimers) child.send({ dir });
      const states = (await Promise.all(claimers.map((claimer) => claimer.next()))).map((message) => message['state'] as { inUse: boolean; waiting: boolean });
      outcomes.push(states.map((state) => (state.inUse ? 'in use' : state.waiting ? 'waiting' : 'off')).join(' + '));
      for (const { child } of claimers) child.send({ close: true });
      await Promise.all(claimers.map((claimer) => claimer.next()));
    }
    const tally = Object.fromEntries([...new Set(outcomes)].map((outcome) => [outcome, outcomes.filter((item) => item === outcome).length]));
    const oneEach = outcomes.filter((outcome) => outcome === 'in use + waiting' || outcome === 'waiting + in use').length;
    expect({ rounds: oneEach, tally }).toEqual({ rounds: ROUNDS, tally: expect.any(Object) });
  });
});
