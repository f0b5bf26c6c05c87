// Counting file-system metadata operations in `strace -f -y` output (issue 14, "Kind to Lustre and
// GPFS"): which syscalls with a path argument reach files under one directory (the ensemble root),
// by class, and where they come from (a table of normalised path patterns: runs/N/.themis/status.json).
//
// What counts:
// - every call whose path argument (either one, for link and rename) resolves under the root;
//   relative paths are resolved against the dirfd's path (`-y` prints it: `AT_FDCWD</cwd>`,
//   `5</dir>`), else against the process's cwd as tracked here (the last `AT_FDCWD<...>` it printed
//   or its last chdir/fchdir; before either, the directory strace was started in);
// - failed calls too (ENOENT, EEXIST): each still costs the file server a round trip;
// - a call strace printed as `<unfinished ...>` once, with its `<... resumed>` half supplying the result;
// - an open with O_CREAT (or O_TMPFILE), and creat(), is counted as a create, namespace-changing,
//   whether or not the file existed: strace cannot tell, and a server must treat it as a create.
// Namespace-changing: link, rename, unlink/rmdir, mkdir, mknod, symlink, and those creates.
// Calls on a file descriptor alone (close, fstat, statx(fd, "", AT_EMPTY_PATH), fchdir) are no
// path lookup: they are tallied apart (`fdOps`) and in no total.
import fs from 'node:fs';
import path from 'node:path';

/** Syscall -> [class, [[dirfd arg index or -1, path arg index], ...]] for calls that look a path up. */
// biome-ignore format: a table, one call a line
const PATH_CALLS = {
  open: ['open', [[-1, 0]]],
  creat: ['open', [[-1, 0]]],
  openat: ['open', [[0, 1]]],
  openat2: ['open', [[0, 1]]],
  stat: ['stat', [[-1, 0]]],
  lstat: ['stat', [[-1, 0]]],
  stat64: ['stat', [[-1, 0]]],
  lstat64: ['stat', [[-1, 0]]],
  newfstatat: ['stat', [[0, 1]]],
  fstatat64: ['stat', [[0, 1]]],
  statx: ['stat', [[0, 1]]],
  access: ['stat', [[-1, 0]]],
  faccessat: ['stat', [[0, 1]]],
  faccessat2: ['stat', [[0, 1]]],
  readlink: ['stat', [[-1, 0]]],
  readlinkat: ['stat', [[0, 1]]],
  chdir: ['chdir', [[-1, 0]]],
  link: ['link', [[-1, 0], [-1, 1]]],
  linkat: ['link', [[0, 1], [2, 3]]],
  rename: ['rename', [[-1, 0], [-1, 1]]],
  renameat: ['rename', [[0, 1], [2, 3]]],
  renameat2: ['rename', [[0, 1], [2, 3]]],
  unlink: ['unlink', [[-1, 0]]],
  unlinkat: ['unlink', [[0, 1]]],
  rmdir: ['unlink', [[-1, 0]]],
  mkdir: ['mkdir', [[-1, 0]]],
  mkdirat: ['mkdir', [[0, 1]]],
  mknod: ['mknod', [[-1, 0]]],
  mknodat: ['mknod', [[0, 1]]],
  // The target of a symlink is its content, not a lookup: only the new name counts.
  symlink: ['symlink', [[-1, 1]]],
  symlinkat: ['symlink', [[1, 2]]],
  statfs: ['other', [[-1, 0]]],
  truncate: ['other', [[-1, 0]]],
  chmod: ['other', [[-1, 0]]],
  fchmodat: ['other', [[0, 1]]],
  chown: ['other', [[-1, 0]]],
  lchown: ['other', [[-1, 0]]],
  fchownat: ['other', [[0, 1]]],
  utime: ['other', [[-1, 0]]],
  utimes: ['other', [[-1, 0]]],
  utimensat: ['other', [[0, 1]]],
  futimesat: ['other', [[0, 1]]],
  execve: ['other', [[-1, 0]]],
  execveat: ['other', [[0, 1]]],
  getxattr: ['other', [[-1, 0]]],
  lgetxattr: ['other', [[-1, 0]]],
  setxattr: ['other', [[-1, 0]]],
  lsetxattr: ['other', [[-1, 0]]],
  listxattr: ['other', [[-1, 0]]],
  llistxattr: ['other', [[-1, 0]]],
  removexattr: ['other', [[-1, 0]]],
  lremovexattr: ['other', [[-1, 0]]],
  inotify_add_watch: ['other', [[0, 1]]],
  name_to_handle_at: ['other', [[0, 1]]],
};

/** The classes of PATH_CALLS, in table order; `other` is counted in the total, not as namespace-changing. */
export const CLASSES = ['open', 'stat', 'chdir', 'link', 'rename', 'unlink', 'mkdir', 'mknod', 'symlink', 'other'];
const NAMESPACE = new Set(['link', 'rename', 'unlink', 'mkdir', 'mknod', 'symlink']);

/** Calls on a descriptor tallied in `fdOps` when the descriptor's file (from `-y`) is under the root. */
const FD_CALLS = new Set(['close', 'fstat', 'fstat64', 'fchdir', 'fchmod', 'fchown', 'ftruncate', 'fsync', 'fdatasync', 'fstatfs', 'fgetxattr', 'fsetxattr', 'flistxattr', 'flock', 'fcntl']);

/**
 * A path of the ensemble, relative to its root, with what varies between runs and processes
 * replaced: run ids (a component of digits) by N, `.tmp-...` suffixes by `.tmp-X`, claim-aside
 * suffixes (`claim.released-<pid>-<x>`) by `-X`, packer ids (`host-pid-hex6`) by PACKER.
 */
export function normalise(rel) {
  return rel
    .split('/')
    .map((c) => {
      if (/^\d+$/.test(c)) return 'N';
      let m = /^(.*\.tmp)-.+$/.exec(c);
      if (m) return `${m[1]}-X`;
      m = /^(.*\.[a-z]+)-\d+-[0-9a-z]+$/.exec(c);
      if (m) return `${m[1]}-X`;
      m = /^(packer-)?.+-\d+-[0-9a-f]{6}(\..*)?$/.exec(c);
      if (m) return `${m[1] ?? ''}PACKER${m[2] ?? ''}`;
      return c;
    })
    .join('/');
}

/** Split strace's argument text into top-level arguments (quotes, brackets and `-y`'s `<path>` respected); stops at the closing `)`. */
export function splitArgs(text) {
  const args = [];
  let cur = '';
  let depth = 0;
  let inStr = false;
  let angle = 0;
  let closed = false;
  let i = 0;
  for (; i < text.length; i++) {
    const ch = text[i];
    if (inStr) {
      cur += ch;
      if (ch === '\\') cur += text[++i] ?? '';
      else if (ch === '"') inStr = false;
      continue;
    }
    if (angle) {
      cur += ch;
      if (ch === '>') angle--;
      continue;
    }
    if (ch === '"') inStr = true;
    else if (ch === '<' && /[\w]/.test(text[i - 1] ?? '')) angle++;
    else if (ch === '(' || ch === '[' || ch === '{') depth++;
    else if (ch === ']' || ch === '}') depth--;
    else if (ch === ')') {
      if (depth === 0) {
        closed = true;
        break;
      }
      depth--;
    } else if (ch === ',' && depth === 0) {
      args.push(cur.trim());
      cur = '';
      continue;
    }
    cur += ch;
  }
  if (cur.trim() !== '' || args.length) args.push(cur.trim());
  return { args, closed, rest: closed ? text.slice(i + 1) : '' };
}

/** `= 0`, `= 3</p>`, `= -1 ENOENT (No such file...)`, `= ?` after the closing parenthesis. */
function parseResult(rest) {
  const m = /=\s*(-?\d+|\?|0x[0-9a-f]+)(?:<[^>]*>)?(?:\s+([A-Z][A-Z0-9_]+))?/.exec(rest);
  if (!m) return { failed: false, errno: null, known: false };
  const failed = m[1] === '-1';
  return { failed, errno: failed ? (m[2] ?? 'E?') : null, known: m[1] !== '?' };
}

function unquote(arg) {
  const m = /^"((?:[^"\\]|\\.)*)"/.exec(arg);
  if (!m) return null;
  return m[1].replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/g, (_, e) => {
    if (e[0] === 'x') return String.fromCharCode(Number.parseInt(e.slice(1), 16));
    if (/^[0-7]/.test(e)) return String.fromCharCode(Number.parseInt(e, 8));
    return { n: '\n', t: '\t', r: '\r', v: '\v', f: '\f' }[e] ?? e;
  });
}

/** A descriptor argument: `AT_FDCWD`, `5`, or with `-y` `AT_FDCWD</cwd>`, `5</dir>`. */
function parseFd(arg) {
  const m = /^(AT_FDCWD|-?\d+)(?:<(.*)>)?$/.exec(arg ?? '');
  if (!m) return { cwd: false, path: null };
  return { cwd: m[1] === 'AT_FDCWD', path: m[2] ?? null };
}

/**
 * Feed strace output line by line (`add`), then `result()`. `root`: the directory whose files count
 * (absolute); `cwd`: where strace was started (the first process's cwd).
 */
export class StraceCounter {
  constructor({ root, cwd = root }) {
    this.root = path.resolve(root);
    this.cwd = path.resolve(cwd);
    this.cwds = new Map();
    this.pending = new Map(); // pid -> {name, args}
    this.total = 0;
    this.namespace = 0;
    this.creates = 0;
    this.failed = 0;
    this.byClass = Object.fromEntries(CLASSES.map((c) => [c, 0]));
    this.bySyscall = {};
    this.patterns = new Map();
    this.fdOps = {};
    this.unresolved = 0;
    this.unmatched = 0;
    this.lines = 0;
  }

  under(p) {
    return p === this.root || p.startsWith(this.root + '/');
  }

  add(line) {
    this.lines++;
    const m = /^(?:(\d+)\s+)?(?:[\d:.]+\s+)?(.*)$/.exec(line);
    if (!m) return;
    const pid = m[1] ?? '0';
    const body = m[2];
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(body);
    if (resumed) {
      const p = this.pending.get(pid);
      if (!p || p.name !== resumed[1]) {
        this.unmatched++;
        return;
      }
      this.pending.delete(pid);
      const { rest } = splitArgs(resumed[2]);
      this.call(pid, p.name, p.args, parseResult(rest));
      return;
    }
    const call = /^(\w+)\((.*)$/.exec(body);
    if (!call) return; // signals, exits, strace's own messages
    const [, name, text] = call;
    const unfinished = /\s*<unfinished \.\.\.>\s*$/.exec(text);
    if (unfinished) {
      this.pending.set(pid, { name, args: splitArgs(text.slice(0, unfinished.index)).args });
      return;
    }
    const { args, rest } = splitArgs(text);
    this.call(pid, name, args, parseResult(rest));
  }

  resolve(pid, fdArg, p) {
    if (p.startsWith('/')) return path.posix.normalize(p);
    let base = null;
    if (fdArg) {
      const fd = parseFd(fdArg);
      if (fd.path !== null) base = fd.path;
      else if (fd.cwd) base = this.cwds.get(pid) ?? this.cwd;
    } else base = this.cwds.get(pid) ?? this.cwd;
    if (base === null) return null;
    return path.posix.resolve(base, p);
  }

  call(pid, name, args, res) {
    // Whatever `-y` says a process's AT_FDCWD is, is its cwd now.
    for (const a of args) {
      const fd = /^AT_FDCWD<(.*)>$/.exec(a);
      if (fd) this.cwds.set(pid, fd[1]);
    }
    const spec = PATH_CALLS[name];
    if (!spec) {
      if (FD_CALLS.has(name)) {
        const fd = parseFd(args[0]);
        if (fd.path !== null && this.under(fd.path)) this.fdOps[name] = (this.fdOps[name] ?? 0) + 1;
        if (name === 'fchdir' && fd.path !== null && !res.failed) this.cwds.set(pid, fd.path);
      }
      return;
    }
    const [cls, pathArgs] = spec;
    const resolved = [];
    let emptyPath = false;
    for (const [fdIdx, pIdx] of pathArgs) {
      const p = unquote(args[pIdx] ?? '');
      if (p === null) continue; // NULL (utimensat on a descriptor)
      if (p === '') {
        emptyPath = true; // statx(fd, "", AT_EMPTY_PATH): an fstat
        continue;
      }
      const r = this.resolve(pid, fdIdx >= 0 ? args[fdIdx] : null, p);
      if (r === null) this.unresolved++;
      else resolved.push(r);
    }
    if (emptyPath && resolved.length === 0) {
      const fd = parseFd(args[pathArgs[0][0]]);
      if (fd.path !== null && this.under(fd.path)) this.fdOps[`${name}(fd)`] = (this.fdOps[`${name}(fd)`] ?? 0) + 1;
      return;
    }
    if (name === 'chdir' && !res.failed && resolved[0]) this.cwds.set(pid, resolved[0]);
    if (!resolved.some((r) => this.under(r))) return;
    const create = cls === 'open' && (name === 'creat' || /\bO_(CREAT|TMPFILE)\b/.test(args[name === 'open' ? 1 : 2] ?? ''));
    const ns = NAMESPACE.has(cls) || create;
    this.total++;
    this.byClass[cls]++;
    this.bySyscall[name] = (this.bySyscall[name] ?? 0) + 1;
    if (ns) this.namespace++;
    if (create) this.creates++;
    if (res.failed) this.failed++;
    const shown = resolved.map((r) => (this.under(r) ? normalise(path.posix.relative(this.root, r) || '.') : '(outside)')).join(' -> ');
    const key = `${name}${create ? ' O_CREAT' : ''} ${shown}${res.failed ? ` = ${res.errno}` : ''}`;
    const e = this.patterns.get(key);
    if (e) e.count++;
    else this.patterns.set(key, { key, syscall: name, class: cls, paths: shown, create, namespace: ns, errno: res.failed ? res.errno : null, count: 1 });
  }

  /** Totals, per class and syscall, and the patterns (most frequent first). Calls left unfinished (a process that died in one) are counted, result unknown. */
  result() {
    for (const [pid, p] of this.pending) this.call(pid, p.name, p.args, { failed: false, errno: null, known: false });
    this.pending.clear();
    return {
      total: this.total,
      namespace: this.namespace,
      creates: this.creates,
      failed: this.failed,
      byClass: this.byClass,
      bySyscall: this.bySyscall,
      patterns: [...this.patterns.values()].sort((a, b) => b.count - a.count || a.key.localeCompare(b.key)),
      fdOps: this.fdOps,
      unresolved: this.unresolved,
      unmatchedResumes: this.unmatched,
      lines: this.lines,
    };
  }
}

/** Count a whole strace output (a string or an iterable of lines). */
export function countStrace(input, opts) {
  const c = new StraceCounter(opts);
  for (const line of typeof input === 'string' ? input.split('\n') : input) if (line) c.add(line);
  return c.result();
}

/** Count a strace output file, read in chunks (a 100k-run trace is hundreds of MB). */
export function countStraceFile(file, opts) {
  const c = new StraceCounter(opts);
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(1 << 22);
  let tail = '';
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      const lines = (tail + buf.toString('utf8', 0, n)).split('\n');
      tail = lines.pop();
      for (const line of lines) if (line) c.add(line);
    }
  } finally {
    fs.closeSync(fd);
  }
  if (tail) c.add(tail);
  return c.result();
}
