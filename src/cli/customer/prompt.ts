/**
 * Reading credentials: a visible line prompt, a password prompt that does
 * not echo (raw mode on the terminal), and a password from stdin for scripts
 * (`--password-stdin`, like `docker login`).
 */
import { CliError } from './errors.js';

export const stdinIsTty = (): boolean => process.stdin.isTTY === true;

/** Reads one line from the terminal; with `hidden`, nothing typed is shown. */
export function promptLine(question: string, hidden = false): Promise<string> {
  const stdin = process.stdin;
  const out = process.stderr;
  if (!stdin.isTTY) return Promise.reject(new CliError(`cannot ask "${question.trim()}": stdin is not a terminal`));
  out.write(question);
  return new Promise((resolve, reject) => {
    let line = '';
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (err: Error | null) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      out.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done(null);
        if (ch === '\u0003') return done(new CliError('cancelled'));
        if (ch === '\u0004' && line === '') return done(new CliError('cancelled'));
        if (ch === '\u007f' || ch === '\b') {
          if (line.length > 0) {
            line = line.slice(0, -1);
            if (!hidden) out.write('\b \b');
          }
          continue;
        }
        if (ch < ' ') continue;
        line += ch;
        if (!hidden) out.write(ch);
      }
    };
    stdin.on('data', onData);
  });
}

/** All of stdin, without the final newline (`echo "$PW" | tunnelbyte login --password-stdin`). */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** The password: from stdin with --password-stdin, else prompted on a terminal (twice when `confirm`). */
export async function obtainPassword(o: { passwordStdin?: boolean; confirm?: boolean }): Promise<string> {
  if (o.passwordStdin) {
    const p = await readStdin();
    if (!p) throw new CliError('--password-stdin: stdin was empty');
    return p;
  }
  if (!stdinIsTty()) throw new CliError('no password: stdin is not a terminal', 'pass it on stdin with --password-stdin');
  const p = await promptLine('Password: ', true);
  if (o.confirm && (await promptLine('Password (again): ', true)) !== p) throw new CliError('the passwords differ');
  return p;
}

/** The email: the flag, else prompted on a terminal. */
export async function obtainEmail(flag: string | undefined): Promise<string> {
  if (flag) return flag;
  if (!stdinIsTty()) throw new CliError('no email given', 'pass --email ADDRESS');
  return (await promptLine('Email: ')).trim();
}
