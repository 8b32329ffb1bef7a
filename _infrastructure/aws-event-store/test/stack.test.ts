import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { loadTableSchema, parseTableSchema, SchemaError, TABLE_SCHEMA_FILE } from '../lib/table-schema';
import {
  asArray,
  fakeBuiltBundle,
  functionId,
  only,
  resourcesOf,
  notificationTopic,
  roleOfFunction,
  statementsOfRole,
  synth,
} from './helpers';

const API = 'Event store HTTP API';
const RELAY = 'Event store relay';

describe('DynamoDB table', () => {
  it('has the keys, indexes and stream view type of the schema file', () => {
    const schema = loadTableSchema();
    const { json } = synth();
    const [, table] = only(json, 'AWS::DynamoDB::Table');
    const p = table.Properties;
    const keySchema = [
      { AttributeName: schema.partitionKey.name, KeyType: 'HASH' },
      ...(schema.sortKey ? [{ AttributeName: schema.sortKey.name, KeyType: 'RANGE' }] : []),
    ];
    assert.deepEqual(p.KeySchema, keySchema);
    assert.equal(p.StreamSpecification.StreamViewType, schema.streamViewType);
    const gsis = p.GlobalSecondaryIndexes ?? [];
    assert.deepEqual(
      gsis.map((g: any) => g.IndexName),
      schema.globalSecondaryIndexes.map((g) => g.indexName),
    );
    for (const [i, g] of schema.globalSecondaryIndexes.entries()) {
      assert.equal(gsis[i].KeySchema[0].AttributeName, g.partitionKey.name);
      assert.equal(gsis[i].Projection.ProjectionType, g.projectionType);
    }
    // Every key attribute is declared with the schema's type.
    const declared = Object.fromEntries(p.AttributeDefinitions.map((a: any) => [a.AttributeName, a.AttributeType]));
    for (const k of [schema.partitionKey, schema.sortKey, ...schema.globalSecondaryIndexes.flatMap((g) => [g.partitionKey, g.sortKey])]) {
      if (k) assert.equal(declared[k.name], k.type, k.name);
    }
  });

  it('maps indexes with their projections (a schema with an INCLUDE index)', () => {
    const schema = parseTableSchema(
      JSON.stringify({
        partitionKey: { name: 'pk', type: 'S' },
        sortKey: { name: 'sk', type: 'N' },
        globalSecondaryIndexes: [
          {
            indexName: 'byType',
            partitionKey: { name: 'type', type: 'S' },
            sortKey: { name: 'at', type: 'S' },
            projectionType: 'INCLUDE',
            nonKeyAttributes: ['rev'],
          },
        ],
        billingMode: 'PAY_PER_REQUEST',
        streamViewType: 'NEW_AND_OLD_IMAGES',
      }),
      'fixture',
    );
    const { template } = synth({}, schema);
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: Match.arrayWith([{ AttributeName: 'sk', AttributeType: 'N' }]),
      GlobalSecondaryIndexes: [
        {
          IndexName: 'byType',
          KeySchema: [
            { AttributeName: 'type', KeyType: 'HASH' },
            { AttributeName: 'at', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['rev'] },
        },
      ],
      StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' },
    });
    // Grants cover the indexes as well as the table.
    const { json } = synth({}, schema);
    const apiGrants = statementsOfRole(json, roleOfFunction(json, functionId(json, API)));
    const dynamo = apiGrants.find((s) => asArray(s.Action).includes('dynamodb:Query'));
    assert.equal(asArray(dynamo.Resource).length, 2, 'table and table/index/*');
  });

  it('refuses a schema without a stream', () => {
    assert.throws(() =>
      parseTableSchema(
        JSON.stringify({ partitionKey: { name: 'pk', type: 'S' }, billingMode: 'PAY_PER_REQUEST' }),
      ),
      SchemaError,
    );
  });

  it('is retained, on demand, with point-in-time recovery; deletion protection in production', () => {
    const { template } = synth();
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: Match.objectLike({
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        DeletionProtectionEnabled: false,
      }),
    });
    synth({ ES_APP_MODE: 'production' }).template.hasResourceProperties('AWS::DynamoDB::Table', {
      DeletionProtectionEnabled: true,
    });
  });

  it(`reads the schema from ${TABLE_SCHEMA_FILE.split('/').slice(-3).join('/')}`, () => {
    const s = loadTableSchema();
    assert.ok(s.partitionKey.name);
  });
});

describe('log group', () => {
  it('has the configured retention and receives both functions’ JSON logs', () => {
    const { json } = synth({ ES_LOG_RETENTION_DAYS: '90' });
    const [logsId, logGroup] = only(json, 'AWS::Logs::LogGroup');
    assert.equal(logGroup.Properties.RetentionInDays, 90);
    for (const fn of [API, RELAY]) {
      const f = json.Resources[functionId(json, fn)].Properties;
      assert.deepEqual(f.LoggingConfig.LogGroup, { Ref: logsId });
      assert.equal(f.LoggingConfig.LogFormat, 'JSON');
    }
  });

  it('is kept in production and removed with the stack elsewhere', () => {
    assert.equal(only(synth().json, 'AWS::Logs::LogGroup')[1].DeletionPolicy, 'Delete');
    assert.equal(only(synth({ ES_APP_MODE: 'production' }).json, 'AWS::Logs::LogGroup')[1].DeletionPolicy, 'Retain');
  });
});

describe('API function', () => {
  it('runs the bootstrap binary on provided.al2023, arm64 by default, with the table name', () => {
    const { json } = synth();
    const [tableId] = only(json, 'AWS::DynamoDB::Table');
    const f = json.Resources[functionId(json, API)].Properties;
    assert.equal(f.Runtime, 'provided.al2023');
    assert.equal(f.Handler, 'bootstrap');
    assert.deepEqual(f.Architectures, ['arm64']);
    assert.deepEqual(f.Environment.Variables.EVENT_STORE_TABLE_NAME, { Ref: tableId });
    assert.equal(f.Environment.Variables.EVENT_STORE_LOG_FORMAT, 'json');
    assert.ok(f.Timeout > 30, 'long polling holds requests up to 30 s');
  });

  it('names the admin principals to the API function only when configured', () => {
    const plain = synth({ ES_APP_MODE: 'staging' }).json;
    assert.equal(
      plain.Resources[functionId(plain, API)].Properties.Environment.Variables.EVENT_STORE_ADMIN_PRINCIPALS,
      undefined,
    );
    const admins = 'arn:aws:iam::111122223333:role/EventStoreAdmin,arn:aws:iam::111122223333:user/ops';
    const { json } = synth({ ES_APP_MODE: 'staging', ES_ADMIN_PRINCIPALS: admins });
    assert.equal(json.Resources[functionId(json, API)].Properties.Environment.Variables.EVENT_STORE_ADMIN_PRINCIPALS, admins);
    assert.equal(json.Resources[functionId(json, RELAY)].Properties.Environment.Variables.EVENT_STORE_ADMIN_PRINCIPALS, undefined);
  });

  it('takes the architecture from the configuration', () => {
    const { json } = synth({ ES_LAMBDA_ARCH: 'x86_64' });
    for (const fn of [API, RELAY]) {
      assert.deepEqual(json.Resources[functionId(json, fn)].Properties.Architectures, ['x86_64']);
    }
  });

  it('uses the zips of `just build` when they exist, and no placeholder rule then', () => {
    const dir = fakeBuiltBundle();
    const { json, stack } = synth({ ES_PLACEHOLDER_BUNDLE: undefined, ES_LAMBDA_BUNDLE_DIR: dir });
    assert.equal(json.Rules?.PlaceholderBundleIsNotDeployable, undefined);
    Annotations.fromStack(stack).hasNoWarning('*', Match.stringLikeRegexp('placeholder'));
    Annotations.fromStack(stack).hasNoError('*', Match.anyValue());
    const keys = resourcesOf(json, 'AWS::Lambda::Function').map(([, r]) => r.Properties.Code.S3Key);
    assert.equal(new Set(keys).size, 2, 'each function has its own zip');
  });

  it('with the placeholder bundle: a warning and a rule that fails every deployment', () => {
    const { json, stack } = synth();
    const rule = json.Rules.PlaceholderBundleIsNotDeployable.Assertions[0];
    const [a, b] = rule.Assert['Fn::Equals'];
    assert.notEqual(a, b, 'the assertion can never hold');
    Annotations.fromStack(stack).hasWarning('*', Match.stringLikeRegexp('placeholder'));
  });

  it('without a bundle and without the placeholder flag: a synthesis error', () => {
    const { stack } = synth({ ES_PLACEHOLDER_BUNDLE: undefined, ES_LAMBDA_BUNDLE_DIR: '/nonexistent' });
    Annotations.fromStack(stack).hasError('*', Match.stringLikeRegexp('Lambda bundle missing'));
  });
});

describe('Function URL', () => {
  const authOf = (env: Record<string, string>) => only(synth(env).json, 'AWS::Lambda::Url')[1].Properties.AuthType;

  it('is open in development and AWS_IAM in staging and production by default', () => {
    assert.equal(authOf({}), 'NONE');
    assert.equal(authOf({ ES_APP_MODE: 'staging' }), 'AWS_IAM');
    assert.equal(authOf({ ES_APP_MODE: 'production' }), 'AWS_IAM');
    assert.equal(authOf({ ES_FUNCTION_URL_AUTH: 'AWS_IAM' }), 'AWS_IAM');
  });

  it('targets the API function and allows CORS with the configured origins', () => {
    const { json } = synth({ ES_CORS_ALLOWED_ORIGINS: 'https://a.example, https://b.example' });
    const url = only(json, 'AWS::Lambda::Url')[1].Properties;
    assert.deepEqual(url.TargetFunctionArn, { 'Fn::GetAtt': [functionId(json, API), 'Arn'] });
    assert.deepEqual(url.Cors.AllowOrigins, ['https://a.example', 'https://b.example']);
    assert.deepEqual([...url.Cors.AllowMethods].sort(), ['GET', 'HEAD', 'POST', 'PUT']);
    assert.ok(url.Cors.AllowHeaders.includes('content-type'));
    assert.ok(url.Cors.AllowHeaders.includes('authorization'));
    assert.ok(url.Cors.ExposeHeaders.includes('x-request-id'));
  });

  it('is public only when its auth type is NONE', () => {
    const publicPermissions = (json: any) =>
      resourcesOf(json, 'AWS::Lambda::Permission').filter(([, p]) => p.Properties.Principal === '*');
    assert.ok(publicPermissions(synth().json).length > 0);
    assert.equal(publicPermissions(synth({ ES_APP_MODE: 'production' }).json).length, 0);
  });
});

describe('relay function', () => {
  it('reads the table stream in order, bisects, retries a bounded number of times, reports item failures', () => {
    const { json } = synth({ ES_RELAY_BATCH_SIZE: '50', ES_RELAY_RETRY_ATTEMPTS: '20' });
    const [tableId] = only(json, 'AWS::DynamoDB::Table');
    const [queueId] = only(json, 'AWS::SQS::Queue');
    const m = only(json, 'AWS::Lambda::EventSourceMapping')[1].Properties;
    assert.deepEqual(m.FunctionName, { Ref: functionId(json, RELAY) });
    assert.deepEqual(m.EventSourceArn, { 'Fn::GetAtt': [tableId, 'StreamArn'] });
    assert.equal(m.StartingPosition, 'TRIM_HORIZON');
    assert.equal(m.BatchSize, 50);
    assert.equal(m.ParallelizationFactor, 1);
    assert.equal(m.BisectBatchOnFunctionError, true);
    assert.equal(m.MaximumRetryAttempts, 20);
    assert.deepEqual(m.FunctionResponseTypes, ['ReportBatchItemFailures']);
    assert.ok(m.TumblingWindowInSeconds > 0, 'the relay needs the shard id, which only windowed events carry');
    assert.deepEqual(m.DestinationConfig.OnFailure.Destination, { 'Fn::GetAtt': [queueId, 'Arn'] });
  });

  it('is invoked only for appends, deletions and truncations, after a batching window', () => {
    const m = only(synth().json, 'AWS::Lambda::EventSourceMapping')[1].Properties;
    assert.equal(m.MaximumBatchingWindowInSeconds, 1);
    assert.equal(m.FilterCriteria.Filters.length, 2);
    const patterns = m.FilterCriteria.Filters.map((f: any) => JSON.parse(f.Pattern));
    // Lambda's filter semantics for these patterns: a record passes when one
    // pattern matches it, and a pattern matches when every key path holds a
    // value listed (or, for `{exists: true}`, holds one at all).
    const matches = (pat: any, rec: any): boolean =>
      Object.entries(pat).every(([k, v]) =>
        Array.isArray(v)
          ? v.some((x: any) => (typeof x === 'object' && x !== null && 'exists' in x ? (rec?.[k] !== undefined) === x.exists : x === rec?.[k]))
          : matches(v, rec?.[k]),
      );
    const passes = (rec: any) => patterns.some((p: any) => matches(p, rec));
    const rec = (eventName: string, p: string, s: string, image: Record<string, any> = {}) => ({
      eventName,
      dynamodb: { Keys: { p: { S: p }, s: { S: s } }, NewImage: { p: { S: p }, s: { S: s }, ...image } },
    });
    // Every item kind of docs/dynamodb.md, as the stream shows its writes.
    const appendItem = { l: { N: '1' }, n: { N: '1' }, u: { N: '1700000000000000' } };
    assert.ok(passes(rec('INSERT', 'S#order#o-1', '00000000000000000001', appendItem)), 'an append item');
    assert.ok(passes(rec('INSERT', 'S#order#o-1', '00000000000000000002', { ...appendItem, d: { N: '1' } })), 'a tombstone');
    assert.ok(!passes(rec('MODIFY', 'S#order#o-1', '00000000000000000001', { l: { N: '1' } })), 'a truncated head');
    assert.ok(!passes(rec('INSERT', 'S#order#o-1', '00000000000000000003', { l: { N: '4' }, u: { N: '1' } })), 'a truncation’s rewrite');
    assert.ok(!passes(rec('REMOVE', 'S#order#o-1', '00000000000000000001')), 'a removed append item');
    assert.ok(passes(rec('INSERT', 'S#order#o-1', 'tip')), 'a new stream of tip format, or a meta item');
    assert.ok(passes(rec('MODIFY', 'S#order#o-1', 'tip')), 'an append to a stream of tip format, a truncation');
    assert.ok(!passes(rec('REMOVE', 'S#order#o-1', 'tip')));
    assert.ok(!passes(rec('INSERT', 'S#order#o-1', '00000000000000000001', { l: { N: '1' } })), 'chunk');
    assert.ok(!passes(rec('INSERT', 'S#order#o-1', '#00ff', { f: { N: '1' }, k: { N: '1' } })), 'append-id item');
    assert.ok(!passes(rec('INSERT', 'S#order#o-1', 'i#00ff', { f: { N: '1' }, k: { N: '1' } })), 'append-id item (tip format)');
    assert.ok(!passes(rec('INSERT', 'F', '00000000000000000001')), 'feed page (the relay’s own write)');
    assert.ok(!passes(rec('INSERT', 'L#order', '00000000000000000001#o-1')), 'listing entry');
    assert.ok(!passes(rec('INSERT', 'T', 'order')), 'type');
    assert.ok(!passes(rec('MODIFY', 'A', 'shardId-1')), 'announcement mark');
  });

  it('has reserved concurrency outside development, configurable', () => {
    const fn = (env: Record<string, string>) => {
      const json = synth(env).json;
      return json.Resources[functionId(json, RELAY)].Properties.ReservedConcurrentExecutions;
    };
    assert.equal(fn({}), undefined, 'new accounts (limit 10) cannot reserve');
    assert.equal(fn({ ES_APP_MODE: 'production' }), 5);
    assert.equal(fn({ ES_APP_MODE: 'production', ES_RELAY_RESERVED_CONCURRENCY: '20' }), 20);
    assert.equal(fn({ ES_APP_MODE: 'production', ES_RELAY_RESERVED_CONCURRENCY: '0' }), undefined);
  });

  it('has alarms on the failure queue, the iterator age and relay errors', () => {
    const { json } = synth();
    const [queueId] = only(json, 'AWS::SQS::Queue');
    const alarms = resourcesOf(json, 'AWS::CloudWatch::Alarm').map(([, a]) => a.Properties);
    const byMetric = (name: string) => alarms.filter((a) => a.MetricName === name);
    const queue = byMetric('ApproximateNumberOfMessagesVisible');
    assert.equal(queue.length, 1);
    assert.deepEqual(queue[0].Dimensions[0].Value, { 'Fn::GetAtt': [queueId, 'QueueName'] });
    assert.equal(queue[0].Threshold, 0);
    assert.equal(queue[0].ComparisonOperator, 'GreaterThanThreshold');
    const age = byMetric('IteratorAge');
    assert.equal(age.length, 1);
    assert.deepEqual(age[0].Dimensions[0].Value, { Ref: functionId(json, RELAY) });
    assert.equal(age[0].Statistic, 'Maximum');
    const errors = byMetric('Errors');
    assert.equal(errors.length, 1);
    assert.deepEqual(errors[0].Dimensions[0].Value, { Ref: functionId(json, RELAY) });
  });

  it('knows the table and the topic', () => {
    const { json } = synth();
    const [tableId] = only(json, 'AWS::DynamoDB::Table');
    const [topicId] = notificationTopic(json);
    const env = json.Resources[functionId(json, RELAY)].Properties.Environment.Variables;
    assert.deepEqual(env.EVENT_STORE_TABLE_NAME, { Ref: tableId });
    assert.deepEqual(env.EVENT_STORE_TOPIC_ARN, { Ref: topicId });
  });

  it('keeps failed batches for 14 days in an encrypted queue', () => {
    synth().template.hasResourceProperties('AWS::SQS::Queue', {
      MessageRetentionPeriod: 14 * 24 * 3600,
      SqsManagedSseEnabled: true,
    });
  });
});

describe('SNS topic', () => {
  it('logs delivery status for SQS, Lambda and HTTP through a role SNS assumes', () => {
    const { json } = synth();
    const [, topic] = notificationTopic(json);
    const logging = topic.Properties.DeliveryStatusLogging;
    assert.deepEqual(logging.map((l: any) => l.Protocol).sort(), ['http/s', 'lambda', 'sqs']);
    const roleIds = new Set(
      logging.flatMap((l: any) => [l.SuccessFeedbackRoleArn['Fn::GetAtt'][0], l.FailureFeedbackRoleArn['Fn::GetAtt'][0]]),
    );
    assert.equal(roleIds.size, 1);
    const [roleId] = roleIds;
    const role = json.Resources[roleId as string].Properties;
    assert.equal(role.AssumeRolePolicyDocument.Statement[0].Principal.Service, 'sns.amazonaws.com');
    for (const l of logging) assert.equal(l.SuccessFeedbackSampleRate, '100');
  });

  it('delivery status logs may only go to the topic’s own sns/… log groups', () => {
    const { json } = synth();
    const [topicId, topic] = notificationTopic(json);
    const roleId = topic.Properties.DeliveryStatusLogging[0].SuccessFeedbackRoleArn['Fn::GetAtt'][0];
    const statements = statementsOfRole(json, roleId);
    assert.equal(statements.length, 1);
    const resource = JSON.stringify(statements[0].Resource);
    assert.match(resource, /log-group:sns\/eu-central-1\/123456789012\//);
    assert.ok(resource.includes(JSON.stringify({ 'Fn::GetAtt': [topicId, 'TopicName'] })));
  });
});

describe('IAM', () => {
  it('attaches no managed policy to any role', () => {
    for (const [id, role] of resourcesOf(synth().json, 'AWS::IAM::Role')) {
      assert.equal(role.Properties.ManagedPolicyArns, undefined, id);
    }
  });

  it('scopes every grant to the stack’s resources', () => {
    const { json } = synth();
    for (const [id, policy] of resourcesOf(json, 'AWS::IAM::Policy')) {
      for (const s of policy.Properties.PolicyDocument.Statement) {
        assert.equal(s.Effect, 'Allow');
        for (const a of asArray(s.Action)) assert.doesNotMatch(a, /\*/, `${id}: wildcard action ${a}`);
        if (asArray(s.Resource).includes('*')) {
          // dynamodb:ListStreams has no resource-level permissions in IAM:
          // the stream event source needs it on "*" (it only lists stream ARNs).
          assert.deepEqual(asArray(s.Action), ['dynamodb:ListStreams'], `${id}: grant on "*"`);
        }
      }
    }
  });

  it('gives the API function item access to the table and nothing to the topic or the stream', () => {
    const { json } = synth();
    const [tableId] = only(json, 'AWS::DynamoDB::Table');
    const actions = statementsOfRole(json, roleOfFunction(json, functionId(json, API))).flatMap((s) => asArray(s.Action));
    assert.ok(actions.includes('dynamodb:PutItem') && actions.includes('dynamodb:Query'));
    for (const a of actions) assert.doesNotMatch(a, /^(sns:|dynamodb:(GetRecords|Scan|CreateTable|DeleteTable))/);
    const tableStatements = statementsOfRole(json, roleOfFunction(json, functionId(json, API))).filter((s) =>
      JSON.stringify(s.Resource).includes(tableId),
    );
    assert.equal(tableStatements.length, 1);
  });

  it('grants each function exactly the table actions its code calls', () => {
    const { json } = synth();
    const [tableId] = only(json, 'AWS::DynamoDB::Table');
    const tableActions = (fn: string) =>
      statementsOfRole(json, roleOfFunction(json, functionId(json, fn)))
        .filter((s) => JSON.stringify(s.Resource).includes(tableId) && !asArray(s.Action).includes('dynamodb:GetRecords'))
        .flatMap((s) => asArray(s.Action))
        .sort();
    // The actions the code calls, read from the DynamoDB crate's sources: a
    // request (`.put_item()`), or a part of a transaction (`Put::builder()`).
    const src = join(__dirname, '..', '..', '..', 'crates', 'dynamodb', 'src');
    const calls: Record<string, string> = {
      '.get_item()': 'GetItem',
      '.put_item()': 'PutItem',
      '.delete_item()': 'DeleteItem',
      '.update_item()': 'UpdateItem',
      '.query()': 'Query',
      '.scan()': 'Scan',
      '.batch_write_item()': 'BatchWriteItem',
      '.batch_get_item()': 'BatchGetItem',
      'Get::builder()': 'GetItem',
      'Put::builder()': 'PutItem',
      'Update::builder()': 'UpdateItem',
      'Delete::builder()': 'DeleteItem',
      'ConditionCheck::builder()': 'ConditionCheckItem',
    };
    const called = (files: string[]) =>
      [
        ...new Set(
          files.flatMap((f) => {
            const text = readFileSync(join(src, f), 'utf8');
            return Object.entries(calls)
              .filter(([call]) => text.includes(call))
              .map(([, action]) => `dynamodb:${action}`);
          }),
        ),
      ].sort();
    // The API function: the store (appends, reads, feeds, deletion and
    // truncation). The relay function: the relay, the feed's reference
    // cleanup, and the store's reads and cleanups it finishes.
    const shared = ['store.rs', 'feed.rs', 'lifecycle.rs'];
    const apiFiles = [...shared, 'append.rs', ...readdirSync(join(src, 'append')).map((f) => join('append', f))];
    const relayFiles = [...shared, 'relay.rs', 'feed_refs.rs', 'poller.rs'];
    assert.deepEqual(tableActions(API), called(apiFiles));
    assert.deepEqual(tableActions(RELAY), called(relayFiles));
    assert.ok(tableActions(API).includes('dynamodb:DeleteItem'), 'a refused append deletes its claim');
    assert.ok(tableActions(RELAY).includes('dynamodb:DeleteItem'), 'an emptied type index item is deleted');
  });

  it('lets the relay function read the stream and publish to the topic only', () => {
    const { json } = synth();
    const [topicId] = notificationTopic(json);
    const statements = statementsOfRole(json, roleOfFunction(json, functionId(json, RELAY)));
    const publish = statements.filter((s) => asArray(s.Action).includes('sns:Publish'));
    assert.equal(publish.length, 1);
    assert.deepEqual(publish[0].Resource, { Ref: topicId });
    assert.ok(statements.some((s) => asArray(s.Action).includes('dynamodb:GetRecords')));
  });
});

describe('SSM parameters and outputs', () => {
  it('publishes the resource names under /<mode>/event-store/', () => {
    const { json } = synth({ ES_APP_MODE: 'staging' });
    const names = resourcesOf(json, 'AWS::SSM::Parameter').map(([, p]) => p.Properties.Name).sort();
    assert.deepEqual(names, [
      '/staging/event-store/DYNAMODB_TABLE_NAME',
      '/staging/event-store/ES_SNS_TOPIC',
      '/staging/event-store/ES_URL',
      '/staging/event-store/LOG_GROUP',
    ]);
  });

  it('has the outputs of the original service', () => {
    const { json } = synth();
    const [tableId] = only(json, 'AWS::DynamoDB::Table');
    const [topicId] = notificationTopic(json);
    const [logsId] = only(json, 'AWS::Logs::LogGroup');
    const [urlId] = only(json, 'AWS::Lambda::Url');
    assert.deepEqual(json.Outputs.EsDynamoDbTable.Value, { Ref: tableId });
    assert.deepEqual(json.Outputs.EsSnsTopic.Value, { Ref: topicId });
    assert.deepEqual(json.Outputs.EsLogGroup.Value, { Ref: logsId });
    assert.deepEqual(json.Outputs.EsUrl.Value, { 'Fn::GetAtt': [urlId, 'FunctionUrl'] });
  });

  it('names the stack after the mode', () => {
    assert.equal(synth({ ES_APP_MODE: 'production' }).stack.stackName, 'AwsEventStoreStack-production');
  });
});
