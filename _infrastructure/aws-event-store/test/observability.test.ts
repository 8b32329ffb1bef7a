// The observability part of the template: every alarm (metric, threshold,
// action to the alarm topic), the alarm topic and its optional e-mail
// subscription, the functions' metrics namespace, the dashboard and its
// URL output.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { EMF_METRICS, metricsNamespace } from '../lib/observability';
import { functionId, resourcesOf, synth } from './helpers';

const API = 'Event store HTTP API';
const RELAY = 'Event store relay';

/** The alarm topic: the topic no function publishes to. */
function alarmTopicId(json: any): string {
  const topics = resourcesOf(json, 'AWS::SNS::Topic').filter(([, t]) => t.Properties.DisplayName === 'Event store alarms');
  assert.equal(topics.length, 1);
  return topics[0][0];
}

function alarms(json: any): any[] {
  return resourcesOf(json, 'AWS::CloudWatch::Alarm').map(([, a]) => a.Properties);
}

/** The metrics of a math-expression alarm, by id. */
function metricsOf(alarm: any): Record<string, any> {
  return Object.fromEntries(
    (alarm.Metrics ?? []).filter((m: any) => m.MetricStat).map((m: any) => [m.Id, m.MetricStat.Metric]),
  );
}

describe('observability', () => {
  it('sends every alarm, and its recovery, to the alarm topic', () => {
    const { json } = synth();
    const topic = alarmTopicId(json);
    const all = alarms(json);
    assert.equal(all.length, 6);
    for (const a of all) {
      assert.deepEqual(a.AlarmActions, [{ Ref: topic }], a.AlarmDescription);
      assert.deepEqual(a.OKActions, [{ Ref: topic }], a.AlarmDescription);
      assert.equal(a.TreatMissingData, 'notBreaching');
    }
  });

  it('alarms on the API 5xx rate from the Function URL metrics', () => {
    const { json } = synth();
    const a = alarms(json).find((x) => x.Metrics?.some((m: any) => m.Expression?.includes('errors / requests')));
    assert.ok(a, 'a 5xx rate alarm');
    const m = metricsOf(a);
    assert.equal(m.errors.MetricName, 'Url5xxCount');
    assert.equal(m.requests.MetricName, 'UrlRequestCount');
    assert.deepEqual(m.errors.Dimensions, [{ Name: 'FunctionName', Value: { Ref: functionId(json, API) } }]);
    assert.equal(a.Threshold, 5);
    assert.equal(a.ComparisonOperator, 'GreaterThanThreshold');
  });

  it('alarms on DynamoDB throttling of the table', () => {
    const { json } = synth();
    const [tableId] = resourcesOf(json, 'AWS::DynamoDB::Table')[0];
    const a = alarms(json).find((x) => x.Metrics?.some((m: any) => m.Expression === 'reads + writes'));
    assert.ok(a, 'a throttling alarm');
    const m = metricsOf(a);
    assert.equal(m.reads.MetricName, 'ReadThrottleEvents');
    assert.equal(m.writes.MetricName, 'WriteThrottleEvents');
    assert.deepEqual(m.reads.Dimensions, [{ Name: 'TableName', Value: { Ref: tableId } }]);
    assert.equal(a.Threshold, 0);
  });

  it('alarms on SNS delivery failures of the notification topic', () => {
    const { json } = synth();
    const [topicId] = resourcesOf(json, 'AWS::SNS::Topic').find(([, t]) => t.Properties.DisplayName !== 'Event store alarms')!;
    const a = alarms(json).filter((x) => x.MetricName === 'NumberOfNotificationsFailed');
    assert.equal(a.length, 1);
    assert.equal(a[0].Namespace, 'AWS/SNS');
    assert.deepEqual(a[0].Dimensions, [{ Name: 'TopicName', Value: { 'Fn::GetAtt': [topicId, 'TopicName'] } }]);
    assert.equal(a[0].Threshold, 0);
  });

  it('keeps the relay alarms: failure queue, iterator age, errors', () => {
    const { json } = synth();
    const names = alarms(json).map((a) => a.MetricName);
    for (const n of ['ApproximateNumberOfMessagesVisible', 'IteratorAge', 'Errors']) assert.ok(names.includes(n), n);
  });

  it('subscribes the e-mail address of ES_ALARM_EMAIL, and none without it', () => {
    const none = synth().json;
    assert.equal(resourcesOf(none, 'AWS::SNS::Subscription').length, 0);
    const { json } = synth({ ES_ALARM_EMAIL: 'ops@example.com' });
    const subs = resourcesOf(json, 'AWS::SNS::Subscription').map(([, s]) => s.Properties);
    assert.equal(subs.length, 1);
    assert.equal(subs[0].Protocol, 'email');
    assert.equal(subs[0].Endpoint, 'ops@example.com');
    assert.deepEqual(subs[0].TopicArn, { Ref: alarmTopicId(json) });
    assert.throws(() => synth({ ES_ALARM_EMAIL: 'not an address' }), /ES_ALARM_EMAIL/);
  });

  it('tells both functions the metrics namespace', () => {
    const { json, stack } = synth();
    for (const fn of [API, RELAY]) {
      const env = json.Resources[functionId(json, fn)].Properties.Environment.Variables;
      assert.equal(env.EVENT_STORE_METRICS_NAMESPACE, metricsNamespace(stack.stackName));
    }
  });

  it('has a dashboard with the functions\' metrics beside the built-in ones, and its URL as an output', () => {
    const { json, stack } = synth();
    const boards = resourcesOf(json, 'AWS::CloudWatch::Dashboard');
    assert.equal(boards.length, 1);
    assert.equal(boards[0][1].Properties.DashboardName, stack.stackName);
    const body = JSON.stringify(boards[0][1].Properties.DashboardBody);
    const ns = metricsNamespace(stack.stackName);
    for (const [fn, names] of Object.entries(EMF_METRICS)) {
      for (const name of names) {
        assert.ok(body.includes(`\\"${ns}\\",\\"${name}\\",\\"Function\\",\\"${fn}\\"`), `${fn} ${name} on the dashboard`);
      }
    }
    for (const builtIn of [
      'AWS/Lambda\\",\\"Invocations',
      'AWS/Lambda\\",\\"IteratorAge',
      'AWS/Lambda\\",\\"Url5xxCount',
      'AWS/DynamoDB\\",\\"ConsumedWriteCapacityUnits',
      'AWS/DynamoDB\\",\\"WriteThrottleEvents',
      'AWS/SNS\\",\\"NumberOfNotificationsFailed',
      'AWS/SQS\\",\\"ApproximateNumberOfMessagesVisible',
    ]) {
      assert.ok(body.includes(builtIn), builtIn);
    }
    assert.ok(body.includes('\\"type\\":\\"alarm\\"'), 'an alarm status widget');
    const url = json.Outputs.EsDashboardUrl.Value;
    assert.ok(JSON.stringify(url).includes('#dashboards:name='), JSON.stringify(url));
    assert.ok(json.Outputs.EsAlarmTopic);
  });
});
