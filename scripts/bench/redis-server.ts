import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection, createServer } from 'node:net';

/**
 * A real redis-server on a free loopback port, started here (by a test or
 * a measuring script) and stopped by its pid. `stop` and `start` again keep the port, so clients
 * see the same server go away and come back.
 */

export const REDIS_SERVER = process.env['LACQUER_TEST_REDIS_SERVER'] ?? '/usr/bin/redis-server';

export interface TestRedis {
  readonly port: number;
  readonly url: string;
  /** Whether the server is running now. */
  readonly running: boolean;
  /** Starts the server again on the same port (after `stop`). */
  start(): Promise<void>;
  /** SIGTERM (a clean shutdown, which writes the append-only file when `persistDir` is set), or SIGKILL. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** SIGSTOP: the server hangs with its connections open, answering nothing, until `resume`. */
  pause(): void;
  resume(): void;
}

export interface TestRedisOptions {
  /** Keep data across stop/start in this directory (append-only file); default: no persistence at all. */
  persistDir?: string;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startRedis(options: TestRedisOptions = {}): Promise<TestRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  let output = '';
  const args = () => [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '',
    ...(options.persistDir === undefined ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--dir', options.persistDir, '--appendfsync', 'always']),
  ];
  const start = async () => {
    output = '';
    const started = spawn(REDIS_SERVER, args(), { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    started.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    started.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 20_000;
    while (!(await ping(port))) {
      if (started.exitCode !== null || started.signalCode !== null) throw new Error(`redis-server exited at start:\n${output}`);
      if (Date.now() > deadline) throw new Error(`redis-server did not answer PING within 20 s:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };
  const stop = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM') => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    process.kill(running.pid!, signal);
    // A paused server handles SIGTERM only once it runs again.
    if (signal === 'SIGTERM') process.kill(running.pid!, 'SIGCONT');
    await exited;
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    start,
    stop,
    pause: () => {
      if (child?.pid !== undefined) process.kill(child.pid, 'SIGSTOP');
    },
    resume: () => {
      if (child?.pid !== undefined) process.kill(child.pid, 'SIGCONT');
    },
  };
}

/** True when a PING on a fresh connection is answered with PONG. */
export function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}
