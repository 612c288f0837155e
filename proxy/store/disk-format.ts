import { crc32 } from 'node:zlib';
import { entryMeta, type Entry } from '../cache/entry.js';

/**
 * The disk tier's metadata file: a fixed header, then the entry (without its
 * body) as JSON. Bodies live in their own files so that rewriting an entry's
 * times (a 304 freshening it, a soft purge) never copies the body.
 *
 *   offset 0   "LQM1"                     magic and format version
 *   offset 4   u32 BE  JSON length
 *   offset 8   u32 BE  CRC-32 of the JSON
 *   offset 12  JSON
 *
 * A file is only ever renamed into place once complete, so a length or
 * checksum mismatch means damage or a foreign file, never a write in progress.
 */
const MAGIC = Buffer.from('LQM1', 'latin1');
const HEADER_BYTES = 12;

export interface BodyRef {
  /** Name of the body file, without extension. */
  readonly id: string;
  readonly length: number;
  readonly crc: number;
}

export type EntryMeta = Omit<Entry, 'body'>;

export interface MetaRecord {
  readonly entry: EntryMeta;
  readonly body: BodyRef;
  /** When written (wall-clock ms × 1000 plus a counter); the newest record for a variant wins at boot. */
  readonly written: number;
}

export function encodeMeta(record: MetaRecord): Buffer {
  const json = Buffer.from(JSON.stringify({ entry: entryMeta(record.entry as Entry), body: record.body, written: record.written }), 'utf8');
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt32BE(json.length, 4);
  header.writeUInt32BE(crc32(json), 8);
  return Buffer.concat([header, json]);
}

/** The record in a metadata file, or why the file is not one. */
export function decodeMeta(bytes: Buffer): MetaRecord | string {
  if (bytes.length < HEADER_BYTES || !bytes.subarray(0, 4).equals(MAGIC)) return 'not a metadata file';
  const length = bytes.readUInt32BE(4);
  if (bytes.length !== HEADER_BYTES + length) return `length ${bytes.length - HEADER_BYTES}, header says ${length}`;
  const json = bytes.subarray(HEADER_BYTES);
  if (crc32(json) !== bytes.readUInt32BE(8)) return 'checksum mismatch';
  let parsed: unknown;
  try {
    parsed = JSON.parse(json.toString('utf8'));
  } catch {
    return 'unreadable JSON';
  }
  return validRecord(parsed) ? parsed : 'fields missing or of the wrong type';
}

const NUMBERS = ['status', 'requestTime', 'responseTime', 'initialAge', 'storedAt', 'freshUntil', 'staleWhileRevalidateUntil', 'staleIfErrorUntil', 'deleteAt', 'size'] as const;
const FLAGS = ['noCache', 'mustRevalidate', 'immutable', 'sharedWithAuthorization'] as const;

function validRecord(value: unknown): value is MetaRecord {
  if (!isObject(value) || typeof value['written'] !== 'number') return false;
  const body = value['body'];
  if (!isObject(body) || typeof body['id'] !== 'string' || !/^[0-9a-f]{32}$/.test(body['id'])) return false;
  if (!isCount(body['length']) || !isCount(body['crc'])) return false;
  const entry = value['entry'];
  if (!isObject(entry) || typeof entry['key'] !== 'string' || typeof entry['variant'] !== 'string') return false;
  if (!isStrings(entry['vary']) || !isStrings(entry['tags']) || !isObject(entry['headers'])) return false;
  for (const name of NUMBERS) if (typeof entry[name] !== 'number') return false;
  for (const name of FLAGS) if (typeof entry[name] !== 'boolean') return false;
  for (const name of ['etag', 'lastModified']) if (entry[name] !== undefined && typeof entry[name] !== 'string') return false;
  return true;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}
