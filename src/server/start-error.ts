/**
 * A failure of `tunnelbyte serve` at start, told in one line a person can act
 * on: what went wrong, on which file or resource, and the fix. `serve`
 * prints it alone on stderr and exits with status 1.
 */

export class StartError extends Error {
  override readonly name = 'StartError';
}

/** One line for a file-system failure: the file, what the errno means here, and the fix. */
export function fsStartError(e: unknown, path: string, doing: string): StartError {
  const code = (e as NodeJS.ErrnoException).code ?? (e as { code?: string }).code;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return new StartError(`cannot ${doing} ${path}: permission denied; run serve as root, or give --data (or TB_DATA) a directory this user may write`);
    case 'EROFS':
      return new StartError(`cannot ${doing} ${path}: read-only file system; give --data (or TB_DATA) a directory on a writable file system`);
    case 'ENOSPC':
    case 'EDQUOT':
    case 'SQLITE_FULL':
      return new StartError(`cannot ${doing} ${path}: no space left on its file system; free some space there, or give --data (or TB_DATA) a directory on another`);
    case 'ENOTDIR':
    case 'EEXIST':
      return new StartError(`cannot ${doing} ${path}: a file stands where a directory must be; move it away, or give --data (or TB_DATA) another directory`);
    default:
      return new StartError(`cannot ${doing} ${path}: ${(e as Error).message}`);
  }
}

/**
 * The one line `serve` prints for any failed start: a StartError as it is;
 * SQLite's and the kernel's refusals with the file or port and the fix;
 * anything else by its message, on one line.
 */
export function describeStartFailure(e: unknown, dbPath: string): string {
  if (e instanceof StartError) return e.message;
  const err = e as Error & { code?: string };
  const code = err.code ?? '';
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return `the database ${dbPath} is damaged (${err.message}); restore it from a backup, or move it away to start with an empty one`;
  }
  if (code === 'SQLITE_FULL' || code === 'SQLITE_READONLY' || code === 'SQLITE_CANTOPEN' || code === 'SQLITE_IOERR') {
    return fsStartError({ code: code === 'SQLITE_FULL' ? 'ENOSPC' : code === 'SQLITE_READONLY' ? 'EROFS' : code, message: err.message }, dbPath, 'open the database').message;
  }
  if (code === 'EADDRINUSE') {
    return `${err.message.replace(/\s+/g, ' ')}; stop the program using it, or choose another --api-listen HOST:PORT / --listen-port N`;
  }
  return (err.message ?? String(e)).replace(/\s*\n\s*/g, ' ');
}
