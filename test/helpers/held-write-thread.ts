/**
 * Code to run before the disk write thread's own source: the real thread,
 * its results held back until the file `gate` exists, so a test can act
 * while writes are done on disk but not yet heard of.
 */
export function holdResultsUntil(gate: string): string {
  return `
      const { parentPort: heldPort } = require('node:worker_threads');
      const { existsSync: gateOpen } = require('node:fs');
      const post = heldPort.postMessage.bind(heldPort);
      const results = [];
      heldPort.postMessage = (message) => results.push(message);
      const flush = setInterval(() => {
        if (!gateOpen(${JSON.stringify(gate)})) return;
        clearInterval(flush);
        heldPort.postMessage = post;
        for (const message of results.splice(0)) post(message);
      }, 5);
    `;
}
