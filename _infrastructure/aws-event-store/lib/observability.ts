// What an operator watches on AWS: the alarm topic (optionally with an
// e-mail subscription from `.env`), the alarms, and one dashboard that shows
// the functions' own metrics (Embedded Metric Format lines, namespace
// `EventStore/<stack>`, dimension `Function`) next to the Lambda, DynamoDB,
// SNS and SQS built-in metrics. docs/operations.md explains each alarm.
import { CfnOutput, Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** The namespace of the functions' EMF metrics for a stack. */
export const metricsNamespace = (stackName: string): string => `EventStore/${stackName}`;

/** The environment variable the functions read the namespace from. */
export const METRICS_NAMESPACE_ENV = 'EVENT_STORE_METRICS_NAMESPACE';

/** The functions' EMF metrics (crates/lambda/src/emf.rs), by function. */
export const EMF_METRICS = {
  api: ['AppendLatency', 'Appends', 'EventsAppended', 'Conflicts', 'RetriesRecognised', 'Throttles'],
  relay: ['BatchSize', 'NewestRecordAge', 'NotificationsPublished', 'NotificationsFailed', 'PositionsAssigned', 'Throttles'],
} as const;

/** Percentage of API requests answered 5xx above which the alarm fires. */
export const API_5XX_PERCENT = 5;

export interface ObservabilityProps {
  readonly stackName: string;
  readonly table: dynamodb.Table;
  readonly apiFunction: lambda.Function;
  readonly relayFunction: lambda.Function;
  readonly topic: sns.Topic;
  readonly relayFailures: sqs.Queue;
  /** Subscribed to the alarm topic when set. */
  readonly alarmEmail?: string;
}

export class Observability extends Construct {
  readonly alarmTopic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    const { table, apiFunction, relayFunction, topic, relayFailures } = props;
    const namespace = metricsNamespace(props.stackName);
    const five = Duration.minutes(5);
    const minute = Duration.minutes(1);

    this.alarmTopic = new sns.Topic(this, 'EsAlarmTopic', { enforceSSL: true, displayName: 'Event store alarms' });
    if (props.alarmEmail) this.alarmTopic.addSubscription(new EmailSubscription(props.alarmEmail));

    const emf = (fn: 'api' | 'relay', name: string, statistic = 'Sum', period = five) =>
      new cloudwatch.Metric({ namespace, metricName: name, dimensionsMap: { Function: fn }, statistic, period });
    const lambdaMetric = (fn: lambda.Function, name: string, statistic = 'Sum', period = five) =>
      new cloudwatch.Metric({
        namespace: 'AWS/Lambda',
        metricName: name,
        dimensionsMap: { FunctionName: fn.functionName },
        statistic,
        period,
      });
    const tableMetric = (name: string, statistic = 'Sum') =>
      new cloudwatch.Metric({
        namespace: 'AWS/DynamoDB',
        metricName: name,
        dimensionsMap: { TableName: table.tableName },
        statistic,
        period: five,
      });

    // --- alarms, all to the alarm topic -----------------------------------
    const alarm = (alarmId: string, props: cloudwatch.AlarmProps) => {
      const a = new cloudwatch.Alarm(this, alarmId, props);
      a.addAlarmAction(new SnsAction(this.alarmTopic));
      a.addOkAction(new SnsAction(this.alarmTopic));
      this.alarms.push(a);
      return a;
    };
    const api5xxRate = new cloudwatch.MathExpression({
      expression: 'IF(requests > 0, 100 * errors / requests, 0)',
      usingMetrics: {
        errors: lambdaMetric(apiFunction, 'Url5xxCount'),
        requests: lambdaMetric(apiFunction, 'UrlRequestCount'),
      },
      label: 'API 5xx (% of requests)',
      period: five,
    });
    alarm('EsApi5xxAlarm', {
      alarmDescription: `More than ${API_5XX_PERCENT}% of API requests answered 5xx for 10 minutes: see the API function's log group by requestId (docs/operations.md)`,
      metric: api5xxRate,
      threshold: API_5XX_PERCENT,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 2,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const throttles = new cloudwatch.MathExpression({
      expression: 'reads + writes',
      usingMetrics: { reads: tableMetric('ReadThrottleEvents'), writes: tableMetric('WriteThrottleEvents') },
      label: 'DynamoDB throttle events',
      period: five,
    });
    alarm('EsDynamoDbThrottleAlarm', {
      alarmDescription: 'DynamoDB throttled requests of the table for 10 minutes: clients get 503 Overloaded (docs/operations.md)',
      metric: throttles,
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 2,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm('EsRelayFailuresAlarm', {
      alarmDescription: 'A relay batch failed every retry and is in the failure queue: replay it (docs/deploy.md)',
      metric: relayFailures.metricApproximateNumberOfMessagesVisible({ period: minute }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm('EsRelayIteratorAgeAlarm', {
      alarmDescription: 'The relay is more than 60 s behind the table stream: the feed and notifications lag',
      metric: lambdaMetric(relayFunction, 'IteratorAge', 'Maximum', minute),
      threshold: 60_000,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 5,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm('EsRelayErrorsAlarm', {
      alarmDescription: 'The relay function failed (it retries; see its log group)',
      metric: relayFunction.metricErrors({ period: five, statistic: 'Sum' }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm('EsSnsDeliveryFailuresAlarm', {
      alarmDescription: 'SNS could not deliver notifications to a subscriber: see the topic\'s delivery status logs (docs/operations.md)',
      metric: topic.metricNumberOfNotificationsFailed({ period: five, statistic: 'Sum' }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    // --- the dashboard -----------------------------------------------------
    const graph = (title: string, left: cloudwatch.IMetric[], right: cloudwatch.IMetric[] = []) =>
      new cloudwatch.GraphWidget({ title, left, right, width: 8, height: 6 });
    this.dashboard = new cloudwatch.Dashboard(this, 'EsDashboard', {
      dashboardName: props.stackName,
      defaultInterval: Duration.hours(3),
    });
    this.dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown:
          '# Event store\nOwn metrics (EMF, namespace `' +
          namespace +
          '`) beside the Lambda, DynamoDB, SNS and SQS metrics. What each means and what to do: docs/operations.md.',
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      graph('API: appends and events', [emf('api', 'Appends'), emf('api', 'EventsAppended')]),
      graph('API: append latency (ms)', [
        emf('api', 'AppendLatency', 'p50'),
        emf('api', 'AppendLatency', 'p99'),
        emf('api', 'AppendLatency', 'Maximum'),
      ]),
      graph('API: conflicts, recognised retries, throttles', [
        emf('api', 'Conflicts'),
        emf('api', 'RetriesRecognised'),
        emf('api', 'Throttles'),
      ]),
    );
    this.dashboard.addWidgets(
      graph('API function: requests and 5xx', [lambdaMetric(apiFunction, 'UrlRequestCount'), lambdaMetric(apiFunction, 'Url5xxCount')], [api5xxRate]),
      graph('API function: invocations, errors, throttles', [
        lambdaMetric(apiFunction, 'Invocations'),
        lambdaMetric(apiFunction, 'Errors'),
        lambdaMetric(apiFunction, 'Throttles'),
      ]),
      graph('API function: duration (ms)', [
        lambdaMetric(apiFunction, 'Duration', 'p50'),
        lambdaMetric(apiFunction, 'Duration', 'p99'),
      ]),
    );
    this.dashboard.addWidgets(
      graph('Relay: batch size and positions assigned', [emf('relay', 'BatchSize', 'Average'), emf('relay', 'PositionsAssigned')]),
      graph('Relay: age of the newest record (ms) and iterator age', [emf('relay', 'NewestRecordAge', 'Maximum')], [
        lambdaMetric(relayFunction, 'IteratorAge', 'Maximum'),
      ]),
      graph('Relay: notifications published and failed', [
        emf('relay', 'NotificationsPublished'),
        emf('relay', 'NotificationsFailed'),
        lambdaMetric(relayFunction, 'Errors'),
      ]),
    );
    this.dashboard.addWidgets(
      graph('DynamoDB: consumed capacity', [tableMetric('ConsumedReadCapacityUnits'), tableMetric('ConsumedWriteCapacityUnits')]),
      graph('DynamoDB: throttles and errors', [throttles, tableMetric('SystemErrors'), tableMetric('UserErrors')], [
        emf('api', 'Throttles'),
        emf('relay', 'Throttles'),
      ]),
      graph('SNS and the failure queue', [
        topic.metricNumberOfMessagesPublished({ period: five }),
        topic.metricNumberOfNotificationsDelivered({ period: five }),
        topic.metricNumberOfNotificationsFailed({ period: five }),
      ], [relayFailures.metricApproximateNumberOfMessagesVisible({ period: minute })]),
    );
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24, height: 4 }),
    );

    const region = Stack.of(this).region;
    new CfnOutput(Stack.of(this), 'EsDashboardUrl', {
      value: `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#dashboards:name=${this.dashboard.dashboardName}`,
      description: 'CloudWatch dashboard of the event store',
    });
    new CfnOutput(Stack.of(this), 'EsAlarmTopic', {
      value: this.alarmTopic.topicArn,
      description: 'SNS topic every alarm notifies (subscribe to it; ES_ALARM_EMAIL does at deploy)',
    });
  }
}
