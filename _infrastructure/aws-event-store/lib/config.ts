// Configuration of the CDK app: read once from the environment (which the
// entry point fills from `.env`), validated, and handed to the stack as a
// plain object. Nothing else in the app reads `process.env`.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const APP_MODES = ['development', 'staging', 'production'] as const;
export type AppMode = (typeof APP_MODES)[number];

export const ARCHITECTURES = ['arm64', 'x86_64'] as const;
export type LambdaArch = (typeof ARCHITECTURES)[number];

export const URL_AUTH_TYPES = ['AWS_IAM', 'NONE'] as const;
export type UrlAuthType = (typeof URL_AUTH_TYPES)[number];

/** Retention periods CloudWatch Logs accepts, in days. */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288,
  3653,
] as const;

/** Names of the two Lambda binaries of the `eventstore-lambda` crate. */
export const API_BINARY = 'event-store-api';
export const RELAY_BINARY = 'event-store-relay';

/** Where the Lambda code comes from. */
export type LambdaBundle =
  | { kind: 'built'; apiZip: string; relayZip: string }
  /** Asked for with ES_PLACEHOLDER_BUNDLE=1: synth and tests only. */
  | { kind: 'placeholder'; dir: string }
  /**
   * Not built and no placeholder asked for: the stack still synthesizes (so
   * that `cdk bootstrap` works before the first build) but reports an error,
   * which makes `cdk synth`, `cdk diff` and `cdk deploy` stop.
   */
  | { kind: 'missing'; dir: string; missing: string[] };

export interface EsConfig {
  account?: string;
  region?: string;
  appMode: AppMode;
  stackName: string;
  architecture: LambdaArch;
  functionUrlAuth: UrlAuthType;
  /**
   * IAM principals (user or role ARNs) that alone may delete and truncate
   * streams (`ES_ADMIN_PRINCIPALS`, comma-separated); empty: every caller the
   * Function URL admits.
   */
  adminPrincipals: string[];
  corsAllowedOrigins: string[];
  logRetentionDays: number;
  relayBatchSize: number;
  relayRetryAttempts: number;
  /** Seconds Lambda gathers stream records before it invokes the relay. */
  relayBatchingWindowSeconds: number;
  /** Concurrency reserved for the relay (0: none, e.g. on new accounts whose limit is 10). */
  relayReservedConcurrency: number;
  /** Subscribed to the alarm topic when set (`ES_ALARM_EMAIL`). */
  alarmEmail?: string;
  bundle: LambdaBundle;
}

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

function pick<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  if ((allowed as readonly string[]).includes(raw)) return raw as T;
  throw new ConfigError(`${name}=${raw} is not one of: ${allowed.join(', ')}`);
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name}=${raw} must be an integer from ${min} to ${max}`);
  }
  return n;
}

/** The repository root, two levels above this app's folder. */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const PLACEHOLDER_DIR = path.resolve(__dirname, '..', 'placeholder-bundle');

/**
 * Folder holding `<binary>/bootstrap.zip` for one architecture, as written by
 * `just build` (`cargo lambda build --lambda-dir target/lambda/<arch>`).
 */
export function defaultBundleDir(arch: LambdaArch): string {
  return path.join(REPO_ROOT, 'target', 'lambda', arch);
}

export function loadConfig(env: Env): EsConfig {
  const appMode = pick(env, 'ES_APP_MODE', APP_MODES, 'development');
  const architecture = pick(env, 'ES_LAMBDA_ARCH', ARCHITECTURES, 'arm64');
  const defaultAuth: UrlAuthType = appMode === 'development' ? 'NONE' : 'AWS_IAM';
  const functionUrlAuth = pick(env, 'ES_FUNCTION_URL_AUTH', URL_AUTH_TYPES, defaultAuth);
  if (appMode === 'production' && functionUrlAuth === 'NONE') {
    throw new ConfigError(
      'ES_FUNCTION_URL_AUTH=NONE is refused in production: the Function URL would be open to anyone',
    );
  }
  const adminPrincipals = (env.ES_ADMIN_PRINCIPALS ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  for (const p of adminPrincipals) {
    if (!/^arn:aws[a-z-]*:(iam|sts)::\d{12}:.+/.test(p)) {
      throw new ConfigError(`ES_ADMIN_PRINCIPALS: ${p} is not an IAM user, role or session ARN`);
    }
  }
  if (adminPrincipals.length > 0 && functionUrlAuth !== 'AWS_IAM') {
    throw new ConfigError(
      'ES_ADMIN_PRINCIPALS needs ES_FUNCTION_URL_AUTH=AWS_IAM: without it the API function does not know who calls',
    );
  }
  const corsAllowedOrigins = (env.ES_CORS_ALLOWED_ORIGINS ?? '*')
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '');
  if (corsAllowedOrigins.length === 0) corsAllowedOrigins.push('*');

  const logRetentionDays = int(env, 'ES_LOG_RETENTION_DAYS', 30, 1, 3653);
  if (!(LOG_RETENTION_DAYS as readonly number[]).includes(logRetentionDays)) {
    throw new ConfigError(
      `ES_LOG_RETENTION_DAYS=${logRetentionDays} is not a CloudWatch retention: ${LOG_RETENTION_DAYS.join(', ')}`,
    );
  }

  const account = env.ES_AWS_ACCOUNT?.trim() || env.CDK_DEFAULT_ACCOUNT || undefined;
  if (account !== undefined && !/^\d{12}$/.test(account)) {
    throw new ConfigError(`ES_AWS_ACCOUNT=${account} is not a 12-digit AWS account id`);
  }
  const region = env.ES_AWS_REGION?.trim() || env.CDK_DEFAULT_REGION || undefined;

  return {
    account,
    region,
    appMode,
    stackName: `AwsEventStoreStack-${appMode}`,
    architecture,
    functionUrlAuth,
    adminPrincipals,
    corsAllowedOrigins,
    logRetentionDays,
    relayBatchSize: int(env, 'ES_RELAY_BATCH_SIZE', 100, 1, 10000),
    relayRetryAttempts: int(env, 'ES_RELAY_RETRY_ATTEMPTS', 100, 0, 10000),
    relayBatchingWindowSeconds: int(env, 'ES_RELAY_BATCHING_WINDOW_SECONDS', 1, 0, 300),
    // A reservation must leave 100 unreserved executions in the account, which
    // new accounts (limit 10) cannot: none in development unless asked for.
    relayReservedConcurrency: int(
      env,
      'ES_RELAY_RESERVED_CONCURRENCY',
      appMode === 'development' ? 0 : 5,
      0,
      1000,
    ),
    alarmEmail: alarmEmail(env),
    bundle: resolveBundle(env, architecture),
  };
}

/** `ES_ALARM_EMAIL`: one e-mail address, or nothing. */
function alarmEmail(env: Env): string | undefined {
  const raw = env.ES_ALARM_EMAIL?.trim();
  if (!raw) return undefined;
  if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(raw)) {
    throw new ConfigError(`ES_ALARM_EMAIL must be one e-mail address, got ${JSON.stringify(raw)}`);
  }
  return raw;
}

/**
 * The built bundle when `ES_LAMBDA_BUNDLE_DIR` (default: the `just build`
 * output for the architecture) holds both zips; the placeholder only when
 * `ES_PLACEHOLDER_BUNDLE=1` asks for it (synth and tests without Rust).
 */
function resolveBundle(env: Env, arch: LambdaArch): LambdaBundle {
  if (env.ES_PLACEHOLDER_BUNDLE === '1') return { kind: 'placeholder', dir: PLACEHOLDER_DIR };
  const dir = env.ES_LAMBDA_BUNDLE_DIR?.trim() || defaultBundleDir(arch);
  const apiZip = path.join(dir, API_BINARY, 'bootstrap.zip');
  const relayZip = path.join(dir, RELAY_BINARY, 'bootstrap.zip');
  const missing = [apiZip, relayZip].filter((f) => !fs.existsSync(f));
  if (missing.length > 0) return { kind: 'missing', dir: PLACEHOLDER_DIR, missing };
  return { kind: 'built', apiZip, relayZip };
}

/**
 * Reads a dotenv file (KEY=VALUE lines, `#` comments, optional quotes) into
 * `env` without overriding variables that are already set.
 */
export function loadDotEnv(file: string, env: Env): void {
  if (!fs.existsSync(file)) return;
  for (const line of fs.readFileSync(file, 'utf8').split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m || line.trimStart().startsWith('#')) continue;
    let value = m[2];
    if (/^(['"]).*\1$/.test(value)) value = value.slice(1, -1);
    else value = value.replace(/\s+#.*$/, '');
    if (env[m[1]] === undefined) env[m[1]] = value;
  }
}
