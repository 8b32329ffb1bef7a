#!/usr/bin/env node
// Entry point of the CDK app: reads `.env` (variables already set win),
// validates the configuration and creates AwsEventStoreStack-<mode>.
import * as path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import { AwsEventStoreStack } from '../lib/aws-event-store-stack';
import { loadConfig, loadDotEnv } from '../lib/config';
import { loadTableSchema } from '../lib/table-schema';

loadDotEnv(path.join(__dirname, '..', '.env'), process.env);
const config = loadConfig(process.env);

const app = new cdk.App();
new AwsEventStoreStack(app, config.stackName, {
  stackName: config.stackName,
  description: `Event store (${config.appMode})`,
  env: { account: config.account, region: config.region },
  config,
  schema: loadTableSchema(),
  tags: { Application: 'event-store', AppMode: config.appMode },
});
