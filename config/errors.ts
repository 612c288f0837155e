/**
 * One problem with the configuration. `path` says where: a dotted field path
 * (`cache.memory.maxSize`, `key.headers[2]`), a flag (`--origin`) or a file
 * (`/etc/lacquer/proxy.config.yaml:3:7`).
 */
export interface ConfigIssue {
  readonly path: string;
  readonly message: string;
}

/**
 * A configuration that cannot be used. It carries every problem found, not
 * just the first, so an operator fixes them in one round. The CLI prints
 * `format()` and exits with status 2.
 */
export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super(issues.map((issue) => `${issue.path}: ${issue.message}`).join('; '));
    this.name = 'ConfigError';
    this.issues = issues;
  }

  /** One line per issue: `config error: cache.memory.maxSize: expected a size such as 256MiB (got "lots")`. */
  format(): string {
    return this.issues.map((issue) => `config error: ${issue.path}: ${issue.message}`).join('\n');
  }
}
