/**
 * `npm run conformance`: runs the public HTTP caching test suite
 * (the http-cache-tests package, a devDependency) against Lacquer.
 *
 * It starts the suite's own origin server on a free loopback port, starts
 * Lacquer in front of it with an empty cache, runs the suite's command-line
 * client through Lacquer, and prints the results by kind (required,
 * optimal, check), counted the way cache-tests.fyi counts them.
 *
 *   --check             fail (exit 1) if a test in the committed baseline no longer passes
 *   --update-baseline   write the passing ids to the baseline file
 *   --out FILE          where to save the raw results (default reports/conformance.json)
 *   --suite DIR         run another checkout of the suite (e.g. its repository head) instead of
 *                       the devDependency; the baseline is for the devDependency, so --check and
 *                       --update-baseline are refused with it
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { defaults } from '../config/schema.js';
import type { Config } from '../config/types.js';
import { startLacquer } from '../proxy/main.js';

interface SuiteTest {
  id: string;
  /** Set here: whether the test belongs to the surrogate suite, which cache-tests.fyi counts apart. */
  surrogate?: boolean;
  name: string;
  kind?: 'required' | 'optimal' | 'check';
  depends_on?: string[];
  browser_only?: boolean;
}

type Kind = 'required' | 'optimal' | 'check';
type RawResult = true | false | [string, string];

const BASELINE = resolve('test/conformance/baseline.json');

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      check: { type: 'boolean', default: false },
      'update-baseline': { type: 'boolean', default: false },
      out: { type: 'string', default: 'reports/conformance.json' },
      suite: { type: 'string' },
    },
  });
  if (values.suite !== undefined && (values.check || values['update-baseline'])) {
    throw new Error('--check and --update-baseline compare with the baseline of the installed suite; they cannot be used with --suite');
  }

  const suiteDir = values.suite === undefined ? dirname(createRequire(import.meta.url).resolve('http-cache-tests/package.json')) : resolve(values.suite);
  const layout = suiteLayout(suiteDir);
  const tests = await loadTests(suiteDir, layout);

  const suitePort = await freePort();
  const suiteServer = await startSuiteServer(suiteDir, layout, suitePort);
  const config = conformanceConfig(`http://127.0.0.1:${suitePort}`);
  const lacquer = await startLacquer(config);
  let results: Record<string, RawResult>;
  try {
    results = await runClient(suiteDir, layout, lacquer.proxyUrl);
  } finally {
    await lacquer.close();
    suiteServer.kill('SIGTERM');
  }

  mkdirSync(dirname(resolve(values.out)), { recursive: true });
  writeFileSync(values.out, `${JSON.stringify(results, null, 2)}\n`);

  const passed = new Set(tests.filter((test) => passes(test, tests, results)).map((test) => test.id));
  printSummary(tests, passed, results);
  console.log(`raw results: ${values.out}`);

  if (values['update-baseline']) {
    writeFileSync(BASELINE, `${JSON.stringify([...passed].sort(), null, 2)}\n`);
    console.log(`baseline updated: ${passed.size} passing tests in ${BASELINE}`);
  }
  if (values.check) {
    const baseline = JSON.parse(readFileSync(BASELINE, 'utf8')) as string[];
    const regressed = baseline.filter((id) => !passed.has(id));
    if (regressed.length > 0) {
      console.error(`conformance regressed: ${regressed.length} baseline test(s) no longer pass:\n  ${regressed.join('\n  ')}`);
      process.exitCode = 1;
    } else {
      console.log(`conformance baseline holds: all ${baseline.length} baseline tests pass`);
    }
  }
}

/** Lacquer as a user would run it, with its defaults, silent, on free loopback ports. */
function conformanceConfig(originUrl: string): Config {
  const base = defaults();
  return {
    ...base,
    // Every run starts from an empty cache: a fresh directory for the disk tier.
    cache: { ...base.cache, disk: { ...base.cache.disk, path: mkdtempSync(join(tmpdir(), 'lacquer-conformance-')) } },
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    origin: { ...base.origin, url: originUrl },
    log: { level: 'silent' },
  };
}

/** Where a checkout of the suite keeps its server and client: the npm package puts them at the top, the repository under test-engine/. */
interface SuiteLayout {
  readonly server: string;
  readonly client: string;
  /** The separately counted surrogate suite, when the client runs one. */
  readonly surrogate: string | undefined;
}

function suiteLayout(suiteDir: string): SuiteLayout {
  for (const base of ['', 'test-engine/']) {
    const server = `${base}server/server.mjs`;
    const client = `${base}cli.mjs`;
    if (!existsSync(join(suiteDir, server)) || !existsSync(join(suiteDir, client))) continue;
    const runsSurrogate = readFileSync(join(suiteDir, client), 'utf8').includes('surrogate-control.mjs');
    return { server, client, surrogate: runsSurrogate ? 'tests/surrogate-control.mjs' : undefined };
  }
  throw new Error(`${suiteDir} does not look like a checkout of the HTTP caching test suite (no server/server.mjs and cli.mjs)`);
}

async function loadTests(suiteDir: string, layout: SuiteLayout): Promise<SuiteTest[]> {
  const index = (await import(pathToFileURL(join(suiteDir, 'tests/index.mjs')).href)) as { default: { tests: SuiteTest[] }[] };
  let marked: SuiteTest[] = [];
  if (layout.surrogate !== undefined) {
    const surrogate = (await import(pathToFileURL(join(suiteDir, layout.surrogate)).href)) as { default: { tests: SuiteTest[] } };
    marked = surrogate.default.tests.map((test) => ({ ...test, surrogate: true }));
  }
  // The command-line client runs the index (plus the surrogate suite, where it has one) and skips browser-only tests.
  return [...index.default.flatMap((suite) => suite.tests), ...marked].filter((test) => test.browser_only !== true);
}

/** A test counts as passing when it passed and every test it depends on passes (as cache-tests.fyi shows it). */
function passes(test: SuiteTest, all: SuiteTest[], results: Record<string, RawResult>, seen = new Set<string>()): boolean {
  if (results[test.id] !== true || seen.has(test.id)) return false;
  seen.add(test.id);
  return (test.depends_on ?? []).every((id) => {
    const dependency = all.find((candidate) => candidate.id === id);
    return dependency !== undefined && passes(dependency, all, results, seen);
  });
}

function kindOf(test: SuiteTest): Kind {
  return test.kind ?? 'required';
}

function printSummary(tests: SuiteTest[], passed: Set<string>, results: Record<string, RawResult>): void {
  for (const [title, group] of [
    ['HTTP caching tests', tests.filter((test) => test.surrogate !== true)],
    ['Surrogate-Control tests', tests.filter((test) => test.surrogate === true)],
  ] as const) {
    if (group.length === 0) continue;
    console.log(`\n${title}\nkind       passed / total`);
    for (const kind of ['required', 'optimal', 'check'] as const) {
      const ofKind = group.filter((test) => kindOf(test) === kind);
      const count = ofKind.filter((test) => passed.has(test.id)).length;
      console.log(`${kind.padEnd(10)} ${String(count).padStart(6)} / ${ofKind.length}`);
    }
  }
  for (const kind of ['required', 'optimal'] as const) {
    const failing = tests.filter((test) => kindOf(test) === kind && !passed.has(test.id));
    if (failing.length === 0) continue;
    console.log(`\nnot passing (${kind}):`);
    for (const test of failing) {
      const result = results[test.id];
      const why = Array.isArray(result) ? `${result[0]}: ${result[1]}` : result === undefined ? 'not run' : 'a test it depends on fails';
      console.log(`  ${test.id} — ${test.name}\n      ${why}`);
    }
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
  return port;
}

function suiteEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { ...process.env, npm_config_protocol: 'http', npm_config_id: '', npm_package_config_id: '', ...extra };
}

async function startSuiteServer(suiteDir: string, layout: SuiteLayout, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [layout.server], {
    cwd: suiteDir,
    env: suiteEnv({ npm_config_port: String(port), npm_config_pidfile: join(process.env['TMPDIR'] ?? '/tmp', `cache-tests-${port}.pid`) }),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolveStart, reject) => {
    child.once('exit', (code) => reject(new Error(`the suite's server exited early (${code})`)));
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('Listening on')) resolveStart();
    });
  });
  return child;
}

async function runClient(suiteDir: string, layout: SuiteLayout, proxyUrl: string): Promise<Record<string, RawResult>> {
  const child = spawn(process.execPath, ['--no-warnings', layout.client], {
    cwd: suiteDir,
    env: suiteEnv({ npm_config_base: proxyUrl }),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolveExit) => child.once('exit', resolveExit));
  const start = output.indexOf('{');
  if (code !== 0 || start === -1) throw new Error(`the suite's client failed (exit ${code}): ${output.slice(0, 500)}`);
  return JSON.parse(output.slice(start)) as Record<string, RawResult>;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
