import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, defaultBundleDir, loadConfig, loadDotEnv } from '../lib/config';
import { fakeBuiltBundle } from './helpers';

const placeholder = { ES_PLACEHOLDER_BUNDLE: '1' };

describe('configuration', () => {
  it('defaults to development, arm64 and an open URL for development', () => {
    const c = loadConfig(placeholder);
    assert.equal(c.appMode, 'development');
    assert.equal(c.stackName, 'AwsEventStoreStack-development');
    assert.equal(c.architecture, 'arm64');
    assert.equal(c.functionUrlAuth, 'NONE');
    assert.deepEqual(c.corsAllowedOrigins, ['*']);
    assert.equal(c.logRetentionDays, 30);
  });

  it('uses AWS_IAM by default in staging and production', () => {
    for (const mode of ['staging', 'production']) {
      const c = loadConfig({ ...placeholder, ES_APP_MODE: mode });
      assert.equal(c.functionUrlAuth, 'AWS_IAM');
      assert.equal(c.stackName, `AwsEventStoreStack-${mode}`);
    }
  });

  it('refuses an open Function URL in production but allows it elsewhere', () => {
    assert.throws(
      () => loadConfig({ ...placeholder, ES_APP_MODE: 'production', ES_FUNCTION_URL_AUTH: 'NONE' }),
      ConfigError,
    );
    assert.equal(loadConfig({ ...placeholder, ES_APP_MODE: 'staging', ES_FUNCTION_URL_AUTH: 'NONE' }).functionUrlAuth, 'NONE');
    assert.equal(loadConfig({ ...placeholder, ES_FUNCTION_URL_AUTH: 'AWS_IAM' }).functionUrlAuth, 'AWS_IAM');
  });

  it('takes admin principals only with AWS_IAM auth and only as IAM ARNs', () => {
    assert.deepEqual(loadConfig({ ...placeholder, ES_APP_MODE: 'staging' }).adminPrincipals, []);
    const c = loadConfig({
      ...placeholder,
      ES_APP_MODE: 'staging',
      ES_ADMIN_PRINCIPALS: ' arn:aws:iam::111122223333:role/EventStoreAdmin , arn:aws:iam::111122223333:user/ops',
    });
    assert.deepEqual(c.adminPrincipals, [
      'arn:aws:iam::111122223333:role/EventStoreAdmin',
      'arn:aws:iam::111122223333:user/ops',
    ]);
    assert.throws(
      () => loadConfig({ ...placeholder, ES_ADMIN_PRINCIPALS: 'arn:aws:iam::111122223333:role/A' }),
      ConfigError,
      'development defaults to an open URL: nobody would be known',
    );
    assert.throws(
      () => loadConfig({ ...placeholder, ES_APP_MODE: 'staging', ES_ADMIN_PRINCIPALS: 'ops' }),
      ConfigError,
    );
  });

  it('rejects unknown values instead of guessing', () => {
    const bad: Record<string, string>[] = [
      { ES_APP_MODE: 'prod' },
      { ES_LAMBDA_ARCH: 'aarch64' },
      { ES_FUNCTION_URL_AUTH: 'IAM' },
      { ES_LOG_RETENTION_DAYS: '31' },
      { ES_LOG_RETENTION_DAYS: 'a week' },
      { ES_RELAY_BATCH_SIZE: '0' },
      { ES_RELAY_RETRY_ATTEMPTS: '-1' },
      { ES_AWS_ACCOUNT: '1234' },
    ];
    for (const env of bad) assert.throws(() => loadConfig({ ...placeholder, ...env }), ConfigError, JSON.stringify(env));
  });

  it('takes the built bundle of the configured architecture, or reports it missing', () => {
    const dir = fakeBuiltBundle();
    const built = loadConfig({ ES_LAMBDA_BUNDLE_DIR: dir, ES_LAMBDA_ARCH: 'x86_64' });
    assert.equal(built.bundle.kind, 'built');
    assert.equal(built.architecture, 'x86_64');
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'es-empty-'));
    const missing = loadConfig({ ES_LAMBDA_BUNDLE_DIR: empty });
    assert.equal(missing.bundle.kind, 'missing');
    assert.equal(loadConfig(placeholder).bundle.kind, 'placeholder');
    assert.match(defaultBundleDir('arm64'), /target\/lambda\/arm64$/);
  });

  it('reads .env without overriding the environment', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'es-env-')), '.env');
    fs.writeFileSync(
      file,
      '# comment\nES_APP_MODE=staging\nES_AWS_REGION="eu-west-1"\nexport ES_LAMBDA_ARCH=x86_64 # trailing\n\nES_AWS_ACCOUNT=111111111111\n',
    );
    const env: Record<string, string | undefined> = { ES_AWS_ACCOUNT: '222222222222' };
    loadDotEnv(file, env);
    assert.deepEqual(env, {
      ES_AWS_ACCOUNT: '222222222222',
      ES_APP_MODE: 'staging',
      ES_AWS_REGION: 'eu-west-1',
      ES_LAMBDA_ARCH: 'x86_64',
    });
  });

  it('.env.example is a valid configuration', () => {
    const env: Record<string, string | undefined> = { ...placeholder };
    loadDotEnv(path.join(__dirname, '..', '.env.example'), env);
    const c = loadConfig(env);
    assert.equal(c.account, '123456789012');
    assert.equal(c.region, 'eu-central-1');
    assert.equal(c.appMode, 'development');
  });
});
