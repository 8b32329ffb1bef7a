// The event store's serverless shape: one DynamoDB table, the API function
// behind a Function URL, the relay function fed by the table's stream, the
// SNS topic it publishes to, one log group, SSM parameters and the outputs
// `just describe` prints, and (lib/observability.ts) the alarms, their topic
// and the dashboard. Every grant is scoped to these resources.
import * as cdk from 'aws-cdk-lib';
import { Annotations, CfnOutput, CfnRule, Duration, Fn, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import type { EsConfig } from './config';
import { METRICS_NAMESPACE_ENV, Observability, metricsNamespace } from './observability';
import type { KeyAttribute, TableSchema } from './table-schema';

/**
 * The DynamoDB item actions each function's code calls (the CDK tests read
 * the SDK calls in `crates/dynamodb/src`): a transaction needs the action of
 * each of its parts.
 */
export const API_TABLE_ACTIONS = [
  'dynamodb:GetItem', // tips, append-id items
  'dynamodb:Query', // a stream's state (its newest item), append items and chunks, feed pages, listings, types
  'dynamodb:UpdateItem', // tip path, tip updates in transactions, deletion and truncation of a tip or a meta item, listing first revision
  'dynamodb:PutItem', // append items, tombstones and append-id items; chunks in transactions
  'dynamodb:DeleteItem', // the append-id item of a refused append (append items)
  'dynamodb:BatchWriteItem', // append-id items before a tip's events move; a deletion's and a truncation's item deletes
  'dynamodb:ConditionCheckItem', // a truncation's rewrite of the item across its bound, checked against the tip or meta item
] as const;
export const RELAY_TABLE_ACTIONS = [
  'dynamodb:GetItem', // checkpoints, announcement marks
  'dynamodb:Query', // a stream's state, append items and chunks, the feed's last page
  'dynamodb:PutItem', // feed pages, announcement marks
  'dynamodb:BatchWriteItem', // listing entries and types (puts and deletes); finishing a deletion's item deletes
  'dynamodb:UpdateItem', // a truncated stream's listing entry (first revision); a deleted stream's meta item; a cut feed page or type index item
  'dynamodb:DeleteItem', // a type index item left without entries by a deletion's or truncation's cleanup
  'dynamodb:ConditionCheckItem', // finishing a truncation's rewrite of the item across its bound
] as const;

export interface AwsEventStoreStackProps extends cdk.StackProps {
  readonly config: EsConfig;
  readonly schema: TableSchema;
}

/** Longest `wait=S` of the long-polling feed endpoints (API.md), in seconds. */
const MAX_LONG_POLL_SECONDS = 30;

/**
 * The stream records the relay needs (`crates/dynamodb/src/relay.rs`,
 * `parse_change`, ignores every other item):
 * - an append item's first write, marked by its event count `n` (every
 *   append and deletion of a stream of append items: the tombstone is one);
 * - a stream's `tip` item written (INSERT or MODIFY): every append,
 *   deletion and truncation of a stream of tip format, and the truncations
 *   of a stream of append items (its meta item).
 * Everything else — the relay's own feed pages, listing entries, type and
 * announcement items, chunks and append-id items, and deletions — is
 * filtered out before Lambda is invoked, so the relay's writes do not
 * invoke it again.
 */
export const RELAY_RECORD_FILTERS = [
  { eventName: ['INSERT'], dynamodb: { NewImage: { n: { N: [{ exists: true }] } } } },
  { eventName: ['INSERT', 'MODIFY'], dynamodb: { Keys: { s: { S: ['tip'] } } } },
];

const attr = (k: KeyAttribute): dynamodb.Attribute => ({
  name: k.name,
  type: { S: dynamodb.AttributeType.STRING, N: dynamodb.AttributeType.NUMBER, B: dynamodb.AttributeType.BINARY }[
    k.type
  ],
});

export class AwsEventStoreStack extends Stack {
  readonly table: dynamodb.Table;
  readonly logGroup: logs.LogGroup;
  readonly topic: sns.Topic;
  readonly apiFunction: lambda.Function;
  readonly functionUrl: lambda.FunctionUrl;
  readonly relayFunction: lambda.Function;
  readonly relayFailures: sqs.Queue;
  readonly observability: Observability;

  constructor(scope: Construct, id: string, props: AwsEventStoreStackProps) {
    super(scope, id, props);
    const { config, schema } = props;
    const production = config.appMode === 'production';

    this.table = this.makeTable(schema, production);

    this.logGroup = new logs.LogGroup(this, 'EsLogs', {
      retention: config.logRetentionDays as logs.RetentionDays,
      removalPolicy: production ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });

    const code = this.lambdaCode(config);
    const architecture = config.architecture === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64;
    const common = {
      runtime: lambda.Runtime.PROVIDED_AL2023,
      handler: 'bootstrap',
      architecture,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
    };

    // API function: the HTTP API behind the Function URL.
    const apiRole = this.functionRole('EsApiRole', 'API function');
    this.apiFunction = new lambda.Function(this, 'EsApiFunction', {
      ...common,
      description: 'Event store HTTP API (Function URL)',
      code: code.api,
      role: apiRole,
      memorySize: 512,
      // Long polling holds a request up to 30 s; leave room to answer.
      timeout: Duration.seconds(MAX_LONG_POLL_SECONDS + 10),
      environment: {
        EVENT_STORE_TABLE_NAME: this.table.tableName,
        EVENT_STORE_APP_MODE: config.appMode,
        EVENT_STORE_LOG_FORMAT: 'json',
        [METRICS_NAMESPACE_ENV]: metricsNamespace(config.stackName),
        // Only these IAM principals may delete and truncate streams.
        ...(config.adminPrincipals.length > 0
          ? { EVENT_STORE_ADMIN_PRINCIPALS: config.adminPrincipals.join(',') }
          : {}),
      },
    });
    this.grantTableData(apiRole, API_TABLE_ACTIONS);

    this.functionUrl = this.apiFunction.addFunctionUrl({
      authType: config.functionUrlAuth === 'AWS_IAM' ? lambda.FunctionUrlAuthType.AWS_IAM : lambda.FunctionUrlAuthType.NONE,
      cors: {
        allowedOrigins: config.corsAllowedOrigins,
        allowedMethods: [lambda.HttpMethod.GET, lambda.HttpMethod.POST, lambda.HttpMethod.PUT, lambda.HttpMethod.HEAD],
        allowedHeaders: [
          'content-type',
          'authorization',
          'x-request-id',
          'x-amz-date',
          'x-amz-security-token',
          'x-amz-content-sha256',
        ],
        exposedHeaders: ['x-request-id'],
        maxAge: Duration.hours(1),
      },
    });

    // Notifications: topic with delivery status logging, as the original had.
    this.topic = this.makeTopic();

    // Relay function: table stream -> feed positions + one SNS message per append.
    this.relayFailures = new sqs.Queue(this, 'EsRelayFailures', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    const relayRole = this.functionRole('EsRelayRole', 'relay function');
    this.relayFunction = new lambda.Function(this, 'EsRelayFunction', {
      ...common,
      description: 'Event store relay: DynamoDB stream -> global feed + SNS notifications',
      code: code.relay,
      role: relayRole,
      memorySize: 256,
      timeout: Duration.seconds(60),
      // Long polls of the API function cannot take the relay's executions.
      reservedConcurrentExecutions: config.relayReservedConcurrency > 0 ? config.relayReservedConcurrency : undefined,
      environment: {
        EVENT_STORE_TABLE_NAME: this.table.tableName,
        EVENT_STORE_TOPIC_ARN: this.topic.topicArn,
        EVENT_STORE_APP_MODE: config.appMode,
        EVENT_STORE_LOG_FORMAT: 'json',
        [METRICS_NAMESPACE_ENV]: metricsNamespace(config.stackName),
      },
    });
    this.relayFunction.addEventSource(
      new DynamoEventSource(this.table, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: config.relayBatchSize,
        // Gather records for a while: one feed page and one SNS batch per
        // invocation, so fewer, larger writes per event.
        maxBatchingWindow: Duration.seconds(config.relayBatchingWindowSeconds),
        filters: RELAY_RECORD_FILTERS.map((f) => lambda.FilterCriteria.filter(f)),
        // One batch per shard at a time: positions are assigned in stream-record
        // order, so the relay's parallelism is the number of open shards.
        parallelizationFactor: 1,
        bisectBatchOnError: true,
        retryAttempts: config.relayRetryAttempts,
        reportBatchItemFailures: true,
        onFailure: new SqsDlq(this.relayFailures),
        // A tumbling window is what makes Lambda put the shard id into each
        // event: the relay checkpoints per shard. The window's state is unused;
        // its length only sets how often an extra, empty final call is made.
        tumblingWindow: Duration.minutes(15),
      }),
    );
    this.grantTableData(relayRole, RELAY_TABLE_ACTIONS);
    this.topic.grantPublish(relayRole);
    this.observability = new Observability(this, 'EsObservability', {
      stackName: config.stackName,
      table: this.table,
      apiFunction: this.apiFunction,
      relayFunction: this.relayFunction,
      topic: this.topic,
      relayFailures: this.relayFailures,
      alarmEmail: config.alarmEmail,
    });

    for (const fn of [this.apiFunction, this.relayFunction]) {
      // CDK makes each function depend on its role and the role's policy
      // explicitly (so the policy exists before the function is invoked); the
      // role half is also implied by Fn::GetAtt, which cfn-lint reports as W3005.
      (fn.node.defaultChild as lambda.CfnFunction).addMetadata('cfn-lint', { config: { ignore_checks: ['W3005'] } });
    }

    this.addSsmParameters(config);
    this.addOutputs();
  }

  private makeTable(schema: TableSchema, production: boolean): dynamodb.Table {
    const table = new dynamodb.Table(this, 'EsTable', {
      partitionKey: attr(schema.partitionKey),
      sortKey: schema.sortKey && attr(schema.sortKey),
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      stream: dynamodb.StreamViewType[schema.streamViewType],
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: production,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    for (const gsi of schema.globalSecondaryIndexes) {
      table.addGlobalSecondaryIndex({
        indexName: gsi.indexName,
        partitionKey: attr(gsi.partitionKey),
        sortKey: gsi.sortKey && attr(gsi.sortKey),
        projectionType: dynamodb.ProjectionType[gsi.projectionType],
        nonKeyAttributes: gsi.projectionType === 'INCLUDE' ? gsi.nonKeyAttributes : undefined,
      });
    }
    return table;
  }

  /** A role that may only write its function's logs to the stack's log group. */
  private functionRole(id: string, what: string): iam.Role {
    const role = new iam.Role(this, id, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Event store ${what}`,
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn],
      }),
    );
    return role;
  }

  /** Exactly the item actions a function uses on the table; no table management, no scans. */
  private grantTableData(role: iam.IRole, actions: readonly string[]): void {
    this.table.grant(role, ...actions);
  }

  private makeTopic(): sns.Topic {
    // SNS writes delivery status logs to log groups named sns/<region>/<account>/<topic>[/Failure].
    const deliveryStatusRole = new iam.Role(this, 'EsDeliveryStatusRole', {
      assumedBy: new iam.ServicePrincipal('sns.amazonaws.com'),
      description: 'Lets SNS write delivery status logs of the event store topic',
    });
    const feedback = {
      successFeedbackRole: deliveryStatusRole,
      failureFeedbackRole: deliveryStatusRole,
      successFeedbackSampleRate: 100,
    };
    const topic = new sns.Topic(this, 'EsTopic', {
      enforceSSL: true,
      loggingConfigs: [
        { protocol: sns.LoggingProtocol.SQS, ...feedback },
        { protocol: sns.LoggingProtocol.LAMBDA, ...feedback },
        { protocol: sns.LoggingProtocol.HTTP, ...feedback },
      ],
    });
    deliveryStatusRole.addToPolicy(
      new iam.PolicyStatement({
        actions: [
          'logs:CreateLogGroup',
          'logs:CreateLogStream',
          'logs:PutLogEvents',
          'logs:PutMetricFilter',
          'logs:PutRetentionPolicy',
        ],
        resources: [
          Stack.of(this).formatArn({
            service: 'logs',
            resource: 'log-group',
            arnFormat: cdk.ArnFormat.COLON_RESOURCE_NAME,
            resourceName: `sns/${this.region}/${this.account}/${topic.topicName}*`,
          }),
        ],
      }),
    );
    return topic;
  }

  private lambdaCode(config: EsConfig): { api: lambda.Code; relay: lambda.Code } {
    const bundle = config.bundle;
    if (bundle.kind === 'built') {
      return { api: lambda.Code.fromAsset(bundle.apiZip), relay: lambda.Code.fromAsset(bundle.relayZip) };
    }
    // Placeholder: a script that only exits with an error. A CloudFormation
    // rule that can never hold makes any deployment of this template fail
    // before a resource is touched.
    new CfnRule(this, 'PlaceholderBundleIsNotDeployable', {
      assertions: [
        {
          assert: Fn.conditionEquals('placeholder-bundle', 'built-bundle'),
          assertDescription:
            'This template was synthesized with the placeholder Lambda bundle (tests only). Deploy with `just deploy`, which builds the real one.',
        },
      ],
    });
    if (bundle.kind === 'placeholder') {
      Annotations.of(this).addWarningV2(
        'event-store:placeholder-bundle',
        'ES_PLACEHOLDER_BUNDLE=1: the functions use a placeholder bundle; this template cannot be deployed',
      );
    } else {
      Annotations.of(this).addError(
        `Lambda bundle missing (${bundle.missing.join(', ')}): run \`just build ${config.architecture}\` ` +
          'or `just deploy`, or set ES_PLACEHOLDER_BUNDLE=1 to synthesize for tests only',
      );
    }
    const placeholder = lambda.Code.fromAsset(bundle.dir);
    return { api: placeholder, relay: placeholder };
  }

  private addSsmParameters(config: EsConfig): void {
    const prefix = `/${config.appMode}/event-store`;
    const params: [string, string, string][] = [
      ['EsTableNameParameter', 'DYNAMODB_TABLE_NAME', this.table.tableName],
      ['EsUrlParameter', 'ES_URL', this.functionUrl.url],
      ['EsSnsTopicParameter', 'ES_SNS_TOPIC', this.topic.topicArn],
      ['EsLogGroupParameter', 'LOG_GROUP', this.logGroup.logGroupName],
    ];
    for (const [id, name, value] of params) {
      new ssm.StringParameter(this, id, { parameterName: `${prefix}/${name}`, stringValue: value });
    }
  }

  private addOutputs(): void {
    new CfnOutput(this, 'EsDynamoDbTable', { value: this.table.tableName, description: 'DynamoDB table name' });
    new CfnOutput(this, 'EsLogGroup', { value: this.logGroup.logGroupName, description: 'CloudWatch log group' });
    new CfnOutput(this, 'EsSnsTopic', { value: this.topic.topicArn, description: 'SNS topic of notifications' });
    new CfnOutput(this, 'EsUrl', { value: this.functionUrl.url, description: 'Function URL of the API' });
    new CfnOutput(this, 'EsRelayFailuresQueue', {
      value: this.relayFailures.queueUrl,
      description: 'SQS queue receiving relay batches that failed every retry',
    });
  }
}
