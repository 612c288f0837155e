/** One problem with the configuration: where (a dotted field path, a flag or a file) and why. */
export interface ConfigIssue {
  readonly path: string;
  readonly message: string;
}

/** A configuration that cannot be used. The CLI prints `format()` and exits with status 2. */
export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super(issues.map((issue) => `${issue.path}: ${issue.message}`).join('; '));
    this.name = 'ConfigError';
    this.issues = issues;
  }

  format(): string {
    return this.issues.map((issue) => `config error: ${issue.path}: ${issue.message}`).join('\n');
  }
}
