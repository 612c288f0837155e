import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';

/** The built command (npm test builds before testing). */
const CLI = resolve('dist/proxy/cli.js');

export interface LacquerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly adminUrl: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves when a line containing `text` has been written. */
  waitFor(text: string, timeoutMs?: number): Promise<void>;
  /** Sends the signal and resolves with the exit code (null when killed by a signal). */
  stop(signal: NodeJS.Signals): Promise<number | null>;
}

export interface ProcessOptions {
  /** Run as this user and group (the tests run as root, for whom file modes do not stop writes). */
  readonly uid?: number;
  readonly gid?: number;
  /** A command that runs node, such as ['prlimit', '--fsize=65536']. */
  readonly wrapper?: readonly string[];
}

/** Starts `lacquer` as a real child process on a free loopback port and waits for its banner. */
export async function startLacquerProcess(args: string[], env: Record<string, string> = {}, cwd?: string, options: ProcessOptions = {}): Promise<LacquerProcess> {
  const command = [...(options.wrapper ?? []), process.execPath, CLI, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', ...args];
  const child = spawn(command[0]!, command.slice(1), {
    env: { ...process.env, LACQUER_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(cwd && { cwd }),
    ...(options.uid !== undefined && { uid: options.uid }),
    ...(options.gid !== undefined && { gid: options.gid }),
  });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const waitFor = async (text: string, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!out.includes(text)) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`lacquer exited before "${text}":\n${out}`);
      if (Date.now() > deadline) throw new Error(`no "${text}" from lacquer within ${timeoutMs} ms:\n${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await waitFor('admin:');
  const url = /listening on (http:\/\/\S+)/.exec(out)![1]!;
  const adminUrl = /admin:\s+(http:\/\/\S+)/.exec(out)![1]!;
  return {
    child,
    url,
    adminUrl,
    output: () => out,
    waitFor,
    stop: async (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
