/**
 * The OpenAPI 3.1 document of /v1 (GET /v1/openapi.json), generated from the
 * route declarations and their zod schemas (z.toJSONSchema, JSON Schema
 * 2020-12 as OpenAPI 3.1 uses).
 */
import { z } from 'zod';
import { VERSION } from '../../executable/build-info.js';
import { COMMON_ERRORS, type Route } from './route.js';
import { ErrorResponse } from './schemas.js';

type Json = Record<string, unknown>;

function schema(s: z.ZodType, io: 'input' | 'output'): Json {
  const out = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Json;
  delete out.$schema;
  return out;
}

export function openApiDocument(routes: Route[]): Json {
  const paths: Record<string, Json> = {};
  const errorSchema = schema(ErrorResponse, 'output');
  for (const r of routes) {
    const path = r.path.replace(/:([A-Za-z_]+)/g, '{$1}');
    const parameters: Json[] = [];
    for (const [name, description] of Object.entries(r.params ?? {})) {
      parameters.push({ name, in: 'path', required: true, description, schema: { type: 'string' } });
    }
    if (r.query) {
      const q = schema(r.query, 'input') as { properties?: Record<string, Json>; required?: string[] };
      for (const [name, s] of Object.entries(q.properties ?? {})) {
        parameters.push({ name, in: 'query', required: q.required?.includes(name) ?? false, description: s.description, schema: s });
      }
    }
    const responses: Record<string, Json> = {};
    for (const [status, text] of Object.entries(COMMON_ERRORS[r.auth])) {
      responses[status] = { description: text, content: { 'application/json': { schema: errorSchema } } };
    }
    for (const [status, doc] of Object.entries(r.responses)) {
      responses[status] = {
        description: doc.description,
        ...(doc.schema ? { content: { [doc.contentType ?? 'application/json']: { schema: schema(doc.schema, 'output') } } } : {}),
      };
    }
    const op: Json = {
      summary: r.summary,
      tags: [r.tag],
      operationId: `${r.method.toLowerCase()}${path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      parameters,
      responses,
      security: r.auth === 'bearer' ? [{ bearer: [], fingerprint: [] }, { bearer: [] }] : r.auth === 'node' ? [{ node: [] }] : [],
    };
    if (r.body) op.requestBody = { required: true, content: { 'application/json': { schema: schema(r.body, 'input') } } };
    if (r.rawBody) {
      op.requestBody = { required: true, content: { 'application/json': { schema: { type: 'object', description: 'A Stripe event, signed.' } } } };
      op.parameters = [{ name: 'Stripe-Signature', in: 'header', required: true, schema: { type: 'string' } }];
    }
    paths[path] = { ...(paths[path] ?? {}), [r.method.toLowerCase()]: op };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'tunnelbyte API',
      version: VERSION,
      description:
        'Errors are {"error": "<short message>"}. 429 responses carry Retry-After (seconds). Anonymous tokens must be sent with the X-TB-Fingerprint header of their machine.',
    },
    servers: [{ url: '/' }],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'tb_... token from signup, login or upgrade.' },
        node: { type: 'http', scheme: 'bearer', description: 'tbn_... node credential from POST /v1/nodes/enroll.' },
        fingerprint: { type: 'apiKey', in: 'header', name: 'X-TB-Fingerprint', description: 'Required with tokens of anonymous accounts.' },
      },
    },
    paths,
  };
}
