import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { measureBurst, ResponseReader } from '../../scripts/bench/burst.js';
import { parseWrkOutput } from '../../scripts/bench/load.js';
import { lacquerConfig, nginxConfig, nginxOpenFileCacheMax, varnishArgs } from '../../scripts/bench/peers.js';
import { parseProcStat } from '../../scripts/bench/procs.js';
import { areaOf, selfTimes, type CpuProfile } from '../../scripts/bench/profile.js';
import { bars, overheadPerObject, renderMarkdown, summarize, type BenchReport, type RunSample } from '../../scripts/bench/report.js';
import { median, ratio } from '../../scripts/bench/stats.js';
import { seededRandom, zipfSampler, zipfSequence } from '../../scripts/bench/zipf.js';

describe('bench: Zipf sampler', () => {
  it('draws only ranks within 1..n', () => {
    const draw = zipfSampler(50, 1, seededRandom(7));
    for (let i = 0; i < 5000; i++) {
      const rank = draw();
      expect(rank).toBeGreaterThanOrEqual(1);
      expect(rank).toBeLessThanOrEqual(50);
    }
  });

  it('makes rank k about k times rarer than rank 1 (s = 1)', () => {
    const draw = zipfSampler(1000, 1, seededRandom(1));
    const counts = new Map<number, number>();
    const samples = 200_000;
    for (let i = 0; i < samples; i++) {
      const rank = draw();
      counts.set(rank, (counts.get(rank) ?? 0) + 1);
    }
    const harmonic = Array.from({ length: 1000 }, (_, k) => 1 / (k + 1)).reduce((a, b) => a + b, 0);
    // Expected share of rank 1 is 1/H(1000) ≈ 13.4%; of rank 10, a tenth of that.
    expect(counts.get(1)! / samples).toBeCloseTo(1 / harmonic, 2);
    expect(counts.get(1)! / counts.get(10)!).toBeGreaterThan(8);
    expect(counts.get(1)! / counts.get(10)!).toBeLessThan(12);
  });

  it('gives the same sequence for the same seed, and lists its distinct ranks', () => {
    const a = zipfSequence(100_000, 1000, 42);
    const b = zipfSequence(100_000, 1000, 42);
    expect(a.ranks).toEqual(b.ranks);
    expect(a.distinct).toEqual([...new Set(a.ranks)].sort((x, y) => x - y));
    expect(zipfSequence(100_000, 1000, 43).ranks).not.toEqual(a.ranks);
  });

  it('rejects a key space that is not a positive integer', () => {
    expect(() => zipfSampler(0, 1, Math.random)).toThrow(/positive integer/);
  });
});

describe('bench: statistics', () => {
  it('takes the middle value, or the mean of the two middle values, ignoring missing runs', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([5, NaN, 1, 3])).toBe(3);
    expect(median([])).toBeNaN();
  });

  it('answers NaN for a ratio with nothing to compare against', () => {
    expect(ratio(3, 2)).toBe(1.5);
    expect(ratio(3, 0)).toBeNaN();
    expect(ratio(NaN, 2)).toBeNaN();
  });
});

describe('bench: peer configurations', () => {
  const nginx = nginxConfig({ port: 8001, originPort: 9001, dir: '/tmp/x', cacheBytes: 1024 ** 3, openFileLimit: 20_000 });

  it('configures nginx as the comparison requires: one worker, cache lock, open_file_cache, tcp_nopush off', () => {
    expect(nginx).toMatch(/^worker_processes 1;$/m);
    expect(nginx).toMatch(/^\s*proxy_cache_lock on;$/m);
    expect(nginx).toMatch(/^\s*open_file_cache max=\d+/m);
    expect(nginx).toMatch(/^\s*tcp_nopush off;$/m);
    expect(nginx).toMatch(/^\s*proxy_cache bench;$/m);
    expect(nginx).toMatch(/max_size=1024m/);
  });

  it('keeps open_file_cache within the descriptors the worker may open, so accept() never runs out', () => {
    expect(nginx).toMatch(/^worker_rlimit_nofile 20000;$/m);
    const cached = Number(/open_file_cache max=(\d+)/.exec(nginx)![1]);
    const connections = Number(/worker_connections (\d+);/.exec(nginx)![1]);
    expect(cached + 2 * connections).toBeLessThan(20_000);
    expect(nginxOpenFileCacheMax(262_144)).toBe(200_000);
  });

  it('binds every listener to loopback', () => {
    const listens = [...nginx.matchAll(/^\s*(listen|server) (\S+);$/gm)].map((m) => m[2]);
    expect(listens).toEqual(['127.0.0.1:9001', '127.0.0.1:8001']);
    const args = varnishArgs({ port: 8002, originPort: 9001, workDir: '/tmp/v', storageBytes: 512 * 1024 ** 2 });
    expect(args[args.indexOf('-a') + 1]).toBe('127.0.0.1:8002');
    expect(args[args.indexOf('-b') + 1]).toBe('127.0.0.1:9001');
    expect(args[args.indexOf('-T') + 1]).toBe('none');
  });

  it('runs Varnish with malloc storage of the requested size and its built-in VCL', () => {
    const args = varnishArgs({ port: 8002, originPort: 9001, workDir: '/tmp/v', storageBytes: 512 * 1024 ** 2 });
    expect(args[args.indexOf('-s') + 1]).toBe('malloc,512m');
    expect(args).not.toContain('-f');
  });

  it('sizes Lacquer’s memory tier and silences its log', () => {
    expect(lacquerConfig({ memoryBytes: 2048 })).toMatch(/maxSize: 2048\n/);
    expect(lacquerConfig({ memoryBytes: 2048 })).toMatch(/level: silent/);
  });

  it('writes a Lacquer config that Lacquer reads with metrics off only when asked, and at its default otherwise', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lacquer-bench-config-'));
    try {
      const read = (text: string) => {
        writeFileSync(join(dir, 'lacquer.yaml'), text);
        return loadConfig({ argv: ['--config', 'lacquer.yaml', '--origin', 'http://127.0.0.1:9'], cwd: dir, env: {} }).config;
      };
      expect(read(lacquerConfig({ memoryBytes: 64 * 1024 ** 2, metrics: false })).metrics.enabled).toBe(false);
      expect(read(lacquerConfig({ memoryBytes: 64 * 1024 ** 2, metrics: false })).cache.memory.maxSize).toBe(64 * 1024 ** 2);
      expect(read(lacquerConfig({ memoryBytes: 64 * 1024 ** 2 })).metrics.enabled).toBe(true);
      expect(read(lacquerConfig({ memoryBytes: 64 * 1024 ** 2, metrics: true })).metrics.enabled).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs Lacquer with its disk tier, at least as large as its memory tier, unless asked for the memory tier alone', () => {
    expect(lacquerConfig({ memoryBytes: 4 * 1024 ** 3 })).toMatch(/\n {2}disk:\n {4}maxSize: 4294967296\n/);
    // Never below the default 1 GiB, which the default largest object (256 MiB) must fit.
    expect(lacquerConfig({ memoryBytes: 2048 })).toMatch(/\n {2}disk:\n {4}maxSize: 1073741824\n/);
    expect(lacquerConfig({ memoryBytes: 2048 })).not.toMatch(/enabled/);
    expect(lacquerConfig({ memoryBytes: 2048, disk: false })).toMatch(/\n {2}disk:\n {4}enabled: false\n/);
  });
});

describe('bench: the burst client’s response reader', () => {
  const feedAll = (reader: ResponseReader, pieces: string[]) => pieces.map((piece) => reader.feed(Buffer.from(piece, 'latin1')));

  it('ends a Content-Length response at its last byte, however the bytes arrive', () => {
    const whole = 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\nCache-Status: lacquer; hit\r\n\r\n0123456789';
    expect(feedAll(new ResponseReader(), [whole])).toEqual([200]);
    const pieces = ['HTTP/1.1 20', '0 OK\r\nContent-Le', 'ngth: 10\r\n\r', '\n01234', '5678', '9'];
    expect(feedAll(new ResponseReader(), pieces)).toEqual([undefined, undefined, undefined, undefined, undefined, 200]);
  });

  it('ends a chunked response at the last chunk, split anywhere', () => {
    const text = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n';
    expect(feedAll(new ResponseReader(), [text])).toEqual([200]);
    for (let cut = 1; cut < text.length; cut++) {
      const answers = feedAll(new ResponseReader(), [text.slice(0, cut), text.slice(cut)]);
      expect(answers).toEqual([undefined, 200]);
    }
  });

  it('reports the status of an error answer and ends a 204 at its header', () => {
    expect(feedAll(new ResponseReader(), ['HTTP/1.1 502 Bad Gateway\r\ncontent-length: 3\r\n\r\nbad'])).toEqual([502]);
    expect(feedAll(new ResponseReader(), ['HTTP/1.1 204 No Content\r\n\r\n'])).toEqual([204]);
  });

  it('refuses what it cannot frame on a keep-alive connection', () => {
    expect(() => feedAll(new ResponseReader(), ['HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody'])).toThrow(/Content-Length or chunked/);
    expect(() => feedAll(new ResponseReader(), ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc'])).toThrow(/more bytes/);
    expect(() => feedAll(new ResponseReader(), ['SSH-2.0-OpenSSH\r\n\r\n'])).toThrow(/status line/);
  });
});

describe('bench: the burst', () => {
  it('warms every connection first, then sends one request per client on the same connections', async () => {
    const connections = new Set<unknown>();
    const seen: string[] = [];
    const server = createServer((request, response) => {
      connections.add(request.socket);
      seen.push(request.url!);
      const answer = () => response.writeHead(request.url === '/slow' ? 200 : 204, { 'content-length': request.url === '/slow' ? '4' : '0' }).end(request.url === '/slow' ? 'slow' : '');
      if (request.url === '/slow') setTimeout(answer, 30);
      else answer();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const burst = await measureBurst({ url, warmPath: '/warm', path: '/slow', clients: 20 });
      expect(connections.size).toBe(20);
      expect(seen.filter((path) => path === '/warm')).toHaveLength(20);
      expect(seen.slice(20).every((path) => path === '/slow')).toBe(true);
      expect(burst.non2xx).toBe(0);
      // Every answer took the server's 30 ms at least; the burst spans them all.
      expect(burst.firstAnswerMs).toBeGreaterThanOrEqual(29);
      expect(burst.spanMs).toBeGreaterThanOrEqual(burst.slowestMs - 0.001);
      expect(burst.spanMs).toBeGreaterThanOrEqual(burst.firstAnswerMs);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('bench: reading measurements', () => {
  it('reads the result line the wrk script prints', () => {
    const out = 'Running 3s test\n  1 threads and 50 connections\nBENCH_JSON {"requests":30000,"duration_us":3000000,"p50_us":1200,"p99_us":4500,"errors":2}\n';
    expect(parseWrkOutput(out)).toEqual({ requests: 30000, durationS: 3, rps: 10000, p50Ms: 1.2, p99Ms: 4.5, errors: 2 });
    expect(() => parseWrkOutput('wrk: connection refused')).toThrow(/no result/);
  });

  it('reads ppid and utime + stime from /proc/<pid>/stat, even when the command name has spaces and parentheses', () => {
    const line = '4242 (node (x) y) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 11 0 1000 1000000 2000 18446744073709551615';
    expect(parseProcStat(line)).toEqual({ ppid: 17, cpuTicks: 325 });
  });

  it('sums self time per function and sorts it, attributing each area', () => {
    const profile: CpuProfile = {
      nodes: [
        { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 } },
        { id: 2, callFrame: { functionName: 'deliverEntry', url: 'file:///x/dist/proxy/deliver.js', lineNumber: 37 } },
        { id: 3, callFrame: { functionName: 'header', url: 'file:///x/node_modules/fastify/lib/reply.js', lineNumber: 272 } },
        { id: 4, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
      ],
      samples: [2, 3, 2, 4, 2],
      timeDeltas: [1000, 500, 1000, 9000, 1000],
      startTime: 0,
    };
    const times = selfTimes(profile);
    expect(times.map((t) => [t.name, t.location, t.area, t.selfMs])).toEqual([
      ['(idle)', '', 'idle', 9],
      ['deliverEntry', 'proxy/deliver.js:38', 'lacquer', 3],
      ['header', 'fastify/lib/reply.js:273', 'fastify', 0.5],
    ]);
    expect(areaOf('(garbage collector)', '')).toBe('gc');
    expect(areaOf('writeHead', 'node:_http_server')).toBe('node');
    expect(areaOf('writev', '')).toBe('socket-write');
    expect(areaOf('wasm-function[20]', 'wasm://wasm/00034eea')).toBe('other-deps');
  });

  it('counts only the samples inside the measured window, so start-up and filling stay out', () => {
    const profile: CpuProfile = {
      nodes: [
        { id: 1, callFrame: { functionName: 'startUp', url: 'file:///x/dist/proxy/main.js', lineNumber: 0 } },
        { id: 2, callFrame: { functionName: 'fastHit', url: 'file:///x/dist/proxy/fast-hit.js', lineNumber: 70 } },
      ],
      // Samples land at 5,000 + 1,000, 3,000, 5,000 and 7,000 µs on the monotonic clock.
      samples: [1, 1, 2, 2],
      timeDeltas: [1000, 2000, 2000, 2000],
      startTime: 5000,
    };
    const times = selfTimes(profile, { fromUs: 9000, toUs: 12_000 });
    expect(times.map((t) => [t.name, t.selfMs])).toEqual([['fastHit', 4]]);
    expect(selfTimes(profile).map((t) => [t.name, t.selfMs])).toEqual([
      ['fastHit', 4],
      ['startUp', 3],
    ]);
  });
});

describe('bench: report', () => {
  const sample = (target: string, round: number, rps: number, p99Ms: number, cpuSeconds: number): RunSample => ({
    round,
    target,
    load: { requests: rps * 3, durationS: 3, rps, p50Ms: 1, p99Ms, errors: 0 },
    cpuSeconds,
    originRequests: 0,
  });
  const samples = [
    sample('lacquer', 1, 50_000, 2, 1.5),
    sample('varnish', 1, 40_000, 2, 1.2),
    sample('lacquer', 2, 60_000, 2.5, 1.8),
    sample('varnish', 2, 45_000, 2, 1.35),
    sample('lacquer', 3, 55_000, 3, 1.65),
    sample('varnish', 3, 44_000, 4, 1.32),
  ];

  it('summarizes a target by the medians of its runs, CPU per request in microseconds', () => {
    const s = summarize(samples, 'lacquer')!;
    expect(s.rps).toBe(55_000);
    expect(s.p99Ms).toBe(2.5);
    expect(s.cpuUsPerRequest).toBeCloseTo(10, 5);
    expect(s.runs).toBe(3);
    expect(summarize(samples, 'nginx')).toBeUndefined();
  });

  it('judges the bars from the figures of the same run', () => {
    const report = { scenarios: [{ kind: 'throughput' as const, id: 'hit-1k', title: '1 KiB hit', connections: 50, samples, notes: [] }] };
    const byName = new Map(bars(report).map((bar) => [bar.name, bar]));
    expect(byName.get('1 KiB hit throughput')).toMatchObject({ verdict: 'met', measured: '1.25×' });
    expect(byName.get('1 KiB hit p99')).toMatchObject({ verdict: 'missed' });
    expect(byName.get('CPU per 1 KiB hit')).toMatchObject({ verdict: 'met', measured: '10.0 µs' });
    expect(byName.get('100 KiB hit throughput')).toMatchObject({ verdict: 'not measured' });
    // Without a workers: 2 target in the run there is no reference row.
    expect([...byName.keys()].some((name) => name.includes('workers'))).toBe(false);
  });

  it('adds reference rows for workers: 2 when the run measured it, judged against the same Varnish runs', () => {
    const withWorkers = [...samples, sample('lacquer (workers: 2)', 1, 48_000, 1, 1), sample('lacquer (workers: 2)', 2, 50_000, 1, 1), sample('lacquer (workers: 2)', 3, 52_000, 1, 1)];
    const report = { scenarios: [{ kind: 'throughput' as const, id: 'hit-1k', title: '1 KiB hit', connections: 50, samples: withWorkers, notes: [] }] };
    const byName = new Map(bars(report).map((bar) => [bar.name, bar]));
    expect(byName.get('1 KiB hit throughput, workers: 2 (reference)')).toMatchObject({ verdict: 'met', measured: '1.14×' });
    expect(byName.get('1 KiB hit p99, workers: 2 (reference)')).toMatchObject({ verdict: 'met' });
    expect(byName.get('1 KiB hit throughput')).toMatchObject({ verdict: 'met', measured: '1.25×' });
  });

  it('counts memory overhead as RSS growth beyond the body bytes, per object', () => {
    expect(overheadPerObject({ target: 'lacquer', objects: 1000, bodyBytes: 10_240_000, rssBeforeBytes: 50_000_000, rssAfterBytes: 61_240_000 })).toBe(1000);
  });

  it('renders tables with ratios against each peer, and lists skipped peers', () => {
    const report: BenchReport = {
      startedAt: 'a',
      finishedAt: 'b',
      mode: 'quick',
      machine: { cpus: 2, node: 'v20', loadAverage: [1, 1, 1], shared: 'shared box' },
      generator: 'wrk',
      targets: ['lacquer', 'varnish'],
      skipped: ['nginx (nginx is not installed)'],
      versions: {},
      peerConfigs: { varnish: 'varnishd ...' },
      scenarios: [
        { kind: 'throughput', id: 'hit-1k', title: '1 KiB hit', connections: 50, samples, notes: [] },
        { kind: 'not-run', id: 'hit-metrics', title: 'metrics', notes: ['not built'] },
      ],
    };
    const markdown = renderMarkdown(report);
    expect(markdown).toContain('| lacquer | 55,000 | 1.00 ms | 2.50 ms | 10.0 | 0 | 0 | 3 |');
    expect(markdown).toContain('- Lacquer vs varnish: req/s 1.25×');
    expect(markdown).toContain('Skipped: nginx (nginx is not installed).');
    expect(markdown).toContain('- not built');
  });

  it('renders an on/off scenario with the ratio of the on side to the off side', () => {
    const onOff = [sample('lacquer', 1, 48_000, 3, 1.44), sample('off', 1, 50_000, 2, 1.2), sample('lacquer', 2, 45_000, 4, 1.35), sample('off', 2, 40_000, 2, 1.2)];
    const markdown = renderMarkdown({
      startedAt: 'a',
      finishedAt: 'b',
      mode: 'quick',
      machine: { cpus: 2, node: 'v20', loadAverage: [1, 1, 1], shared: 'shared box' },
      generator: 'wrk',
      targets: ['lacquer'],
      skipped: [],
      versions: {},
      peerConfigs: {},
      scenarios: [{ kind: 'on-off', id: 'hit-metrics', title: 'metrics on vs off', connections: 50, on: 'lacquer', off: 'off', samples: onOff, notes: ['scraped'] }],
    });
    // Medians: on 46,500 req/s, p99 3.5 ms, 10 µs/req; off 45,000 req/s, p99 2 ms, 9 µs/req (8 and 10).
    expect(markdown).toContain('| lacquer | 46,500 | 1.00 ms | 3.50 ms | 10.0 | 0 | 0 | 2 |');
    expect(markdown).toContain('- on / off: req/s 1.03×, p50 1.00×, p99 1.75×, CPU/req 1.11×');
    expect(markdown).toContain('- scraped');
  });
});
