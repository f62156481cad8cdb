/**
 * Request bodies, read by hand so the limits are exact: a body over
 * `maxBytes` is a 413 (also when Content-Length announces it), malformed
 * JSON a 400. The body is parsed as JSON whatever the Content-Type says
 * (so `curl -d '{...}'` without -H works). An over-limit body is drained
 * (up to a bound) before answering, so the client reads the 413 instead of a
 * connection reset.
 */
import type { Context } from 'koa';
import { ControlError, invalid } from '../errors.js';

/** Past this many bytes an oversized body is not drained: the connection is closed. */
const DRAIN_LIMIT = 16 * 1024 * 1024;

function tooLarge(maxBytes: number): ControlError {
  return new ControlError('too_large', `request body is larger than ${maxBytes} bytes`);
}

async function drain(ctx: Context, seen: number): Promise<void> {
  let total = seen;
  for await (const chunk of ctx.req) {
    total += (chunk as Buffer).length;
    if (total > DRAIN_LIMIT) {
      ctx.set('Connection', 'close');
      return;
    }
  }
}

/** The raw body bytes (Stripe signs them exactly). */
export async function readRawBody(ctx: Context, maxBytes: number): Promise<Buffer> {
  const declared = Number(ctx.get('content-length') || NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    await drain(ctx, 0);
    throw tooLarge(maxBytes);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > maxBytes) {
      await drain(ctx, size);
      throw tooLarge(maxBytes);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks, size);
}

/** The body parsed as JSON; an empty body is `{}`. */
export async function readJsonBody(ctx: Context, maxBytes: number): Promise<unknown> {
  const raw = await readRawBody(ctx, maxBytes);
  const text = raw.toString('utf8').trim();
  if (text.length === 0) return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw invalid('malformed JSON body');
  }
}
