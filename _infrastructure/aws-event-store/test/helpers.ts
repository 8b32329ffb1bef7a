import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsEventStoreStack } from '../lib/aws-event-store-stack';
import { API_BINARY, RELAY_BINARY, loadConfig } from '../lib/config';
import { loadTableSchema, type TableSchema } from '../lib/table-schema';

export type Env = Record<string, string | undefined>;

/** A folder laid out like `just build`'s output, with stand-in zips. */
export function fakeBuiltBundle(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'es-bundle-'));
  for (const bin of [API_BINARY, RELAY_BINARY]) {
    fs.mkdirSync(path.join(dir, bin));
    fs.writeFileSync(path.join(dir, bin, 'bootstrap.zip'), `zip of ${bin}`);
  }
  return dir;
}

export interface Synth {
  stack: AwsEventStoreStack;
  template: Template;
  json: any;
}

export function synth(env: Env = {}, schema: TableSchema = loadTableSchema()): Synth {
  const config = loadConfig({ ES_PLACEHOLDER_BUNDLE: '1', ...env });
  const app = new cdk.App();
  const stack = new AwsEventStoreStack(app, config.stackName, {
    stackName: config.stackName,
    env: { account: '123456789012', region: 'eu-central-1' },
    config,
    schema,
  });
  const template = Template.fromStack(stack);
  return { stack, template, json: template.toJSON() };
}

export function resourcesOf(json: any, type: string): [string, any][] {
  return Object.entries(json.Resources as Record<string, any>).filter(([, r]) => r.Type === type);
}

export function only(json: any, type: string): [string, any] {
  const all = resourcesOf(json, type);
  if (all.length !== 1) throw new Error(`expected one ${type}, found ${all.length}`);
  return all[0];
}

/** The logical id of the function whose description starts with `prefix`. */
export function functionId(json: any, prefix: string): string {
  const found = resourcesOf(json, 'AWS::Lambda::Function').filter(([, r]) =>
    String(r.Properties.Description).startsWith(prefix),
  );
  if (found.length !== 1) throw new Error(`no single function described "${prefix}"`);
  return found[0][0];
}

export function roleOfFunction(json: any, fnId: string): string {
  return json.Resources[fnId].Properties.Role['Fn::GetAtt'][0];
}

/** Every statement of the inline policies attached to a role. */
export function statementsOfRole(json: any, roleId: string): any[] {
  return resourcesOf(json, 'AWS::IAM::Policy')
    .filter(([, p]) => p.Properties.Roles.some((r: any) => r.Ref === roleId))
    .flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
}

export const asArray = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

/** The topic of notifications (the other topic is the alarm topic). */
export function notificationTopic(json: any): [string, any] {
  const topics = resourcesOf(json, 'AWS::SNS::Topic').filter(([, t]) => t.Properties.DisplayName !== 'Event store alarms');
  if (topics.length !== 1) throw new Error(`expected one notification topic, found ${topics.length}`);
  return topics[0];
}
