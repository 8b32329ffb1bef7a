// The DynamoDB table's keys, indexes, billing mode and stream view type come
// from the one schema definition the Rust backend also uses to create its
// table: `crates/dynamodb/table-schema.json`. The CDK app never restates them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from './config';

export const TABLE_SCHEMA_FILE = path.join(REPO_ROOT, 'crates', 'dynamodb', 'table-schema.json');

export type ScalarType = 'S' | 'N' | 'B';
export interface KeyAttribute {
  name: string;
  type: ScalarType;
}
export type ProjectionType = 'ALL' | 'KEYS_ONLY' | 'INCLUDE';
export interface IndexSchema {
  indexName: string;
  partitionKey: KeyAttribute;
  sortKey?: KeyAttribute;
  projectionType: ProjectionType;
  nonKeyAttributes?: string[];
}
export type StreamViewType = 'NEW_IMAGE' | 'OLD_IMAGE' | 'NEW_AND_OLD_IMAGES' | 'KEYS_ONLY';
export interface TableSchema {
  partitionKey: KeyAttribute;
  sortKey?: KeyAttribute;
  globalSecondaryIndexes: IndexSchema[];
  billingMode: 'PAY_PER_REQUEST';
  streamViewType: StreamViewType;
}

export class SchemaError extends Error {}

const STREAM_VIEW_TYPES: StreamViewType[] = ['NEW_IMAGE', 'OLD_IMAGE', 'NEW_AND_OLD_IMAGES', 'KEYS_ONLY'];
const PROJECTIONS: ProjectionType[] = ['ALL', 'KEYS_ONLY', 'INCLUDE'];

function key(raw: any, where: string): KeyAttribute {
  if (typeof raw?.name !== 'string' || !['S', 'N', 'B'].includes(raw?.type)) {
    throw new SchemaError(`${where}: a key needs {"name": string, "type": "S" | "N" | "B"}`);
  }
  return { name: raw.name, type: raw.type };
}

function index(raw: any, where: string): IndexSchema {
  const indexName = raw?.indexName;
  if (typeof indexName !== 'string') throw new SchemaError(`${where}: an index needs "indexName"`);
  const at = `${where} index ${indexName}`;
  const projectionType: ProjectionType = raw.projectionType ?? raw.projection?.type ?? 'ALL';
  if (!PROJECTIONS.includes(projectionType)) throw new SchemaError(`${at}: projection ${projectionType}`);
  return {
    indexName,
    partitionKey: key(raw.partitionKey, `${at} partitionKey`),
    sortKey: raw.sortKey === undefined ? undefined : key(raw.sortKey, `${at} sortKey`),
    projectionType,
    nonKeyAttributes: raw.nonKeyAttributes ?? raw.projection?.nonKeyAttributes,
  };
}

/** Parses and checks the schema file's JSON. */
export function parseTableSchema(json: string, source = TABLE_SCHEMA_FILE): TableSchema {
  const raw = JSON.parse(json);
  if (!STREAM_VIEW_TYPES.includes(raw.streamViewType)) {
    throw new SchemaError(`${source}: the relay needs a stream: streamViewType must be one of ${STREAM_VIEW_TYPES.join(', ')}`);
  }
  if ((raw.billingMode ?? 'PAY_PER_REQUEST') !== 'PAY_PER_REQUEST') {
    throw new SchemaError(`${source}: billingMode ${raw.billingMode} is not supported by the CDK app`);
  }
  return {
    partitionKey: key(raw.partitionKey, `${source} partitionKey`),
    sortKey: raw.sortKey === undefined ? undefined : key(raw.sortKey, `${source} sortKey`),
    globalSecondaryIndexes: (raw.globalSecondaryIndexes ?? []).map((g: any) => index(g, source)),
    billingMode: 'PAY_PER_REQUEST',
    streamViewType: raw.streamViewType,
  };
}

export function loadTableSchema(file = TABLE_SCHEMA_FILE): TableSchema {
  return parseTableSchema(fs.readFileSync(file, 'utf8'), file);
}
