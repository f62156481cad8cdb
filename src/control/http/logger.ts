/**
 * The pino logger of the API and the exit server, with secrets redacted:
 * authorization, fingerprint and Stripe signature headers never reach the
 * log, nor any field named token, password, private key. Request lines carry
 * method, route template, status and duration, not client addresses.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-tb-fingerprint"]',
  'req.headers["stripe-signature"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-tb-fingerprint"]',
  '*.token',
  '*.password',
  '*.privateKey',
  '*.private_key',
  'token',
  'password',
];

export function createLogger(opts: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? 'info',
    base: { svc: 'tunnelbyte' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  return opts.destination ? pino(options, opts.destination as pino.DestinationStream) : pino(options);
}

export const silentLogger = (): Logger => pino({ level: 'silent' });
