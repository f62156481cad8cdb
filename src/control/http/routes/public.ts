/** Public endpoints: health, regions, IP attribution. */
import { defineRoute, type Route } from '../route.js';
import { ErrorResponse, HealthResponse, IpAttributionResponse, IpQuery, RegionsResponse } from '../schemas.js';
import { attributionView, regionView } from '../views.js';

export function publicRoutes(): Route[] {
  return [
    defineRoute({
      method: 'GET',
      path: '/v1/health',
      auth: 'none',
      tag: 'service',
      summary: 'Liveness for supervisors and scripts (not rate limited).',
      responses: { 200: { description: 'The API is up.', schema: HealthResponse } },
      handle: () => ({ status: 200, body: { ok: true } }),
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/regions',
      auth: 'public',
      tag: 'regions',
      summary: 'Active exit regions: those with at least one node that sent a heartbeat recently.',
      responses: { 200: { description: 'The regions.', schema: RegionsResponse } },
      handle: ({ control }) => ({ status: 200, body: { regions: control.regions.listActive().map(regionView) } }),
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/ip/:addr',
      auth: 'public',
      tag: 'regions',
      summary: 'IP attribution: is (or was, with ?at=) this address an exit address of this service, and of which region and node.',
      params: { addr: 'An IPv4 or IPv6 address.' },
      query: IpQuery,
      responses: {
        200: { description: 'The answer (exit: false when it is not one of ours).', schema: IpAttributionResponse },
        400: { description: 'Malformed address or time.', schema: ErrorResponse },
      },
      handle: ({ control, params, query }) => ({
        status: 200,
        body: attributionView(control.ipAttribution.lookup(params.addr ?? '', query.at)),
      }),
    }),
  ];
}
