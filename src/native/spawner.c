/*
 * themis-spawner: the packer's launcher, in C. It does exactly what src/pack/launcher-child.ts does
 * (the Node fallback) and speaks the same protocol (src/pack/launcher-protocol.ts) on stdin/stdout:
 *
 *   packer -> spawner, every field NUL-terminated:
 *     I graceMs journalPath     (first, once; an empty path: no journal)
 *     S key runId step attempt timeoutMs cwd logName logSpare nArgv argv... nEnv K=V...
 *     K key reason              (reason: timeout | dequeue | interrupt | lost-claim)
 *     Q                         (stop every step, then exit)
 *   spawner -> packer, one line each:
 *     R <pid>                   ready
 *     S <key> <pid>             started
 *     E <key> <exit record JSON>
 *   spawner -> the packer's journal (<setup>/packers/<packerId>.journal, opened once with
 *   O_APPEND; one write(2) per line):
 *     S <key> <start JSON>      right after the fork, before "S <key> <pid>" goes to the packer:
 *                               format runId step attempt host pid pgid pidStart startedAt launcherPid
 *                               pidNs
 *     E <key> <exit record JSON> when the step ended, before "E" goes to the packer
 *
 * Each step runs in its own process group with stdin from /dev/null and stdout/stderr appended to
 * <cwd>/<logName> (an earlier log is rotated to run_NNNN.log first). Its start and its exit are
 * journaled, the exit even when the packer is gone (so a successor knows the step ended and how);
 * no file is created per step. The journal keeps 32-64 KiB allocated ahead of its end, so a disk
 * that fills up while steps run still takes their exits. A journal that cannot be written is
 * reported on stderr and the steps go on; after a short write the next line starts with a
 * newline. When stdin closes (the packer died) or on Q, every step's group gets SIGTERM, then
 * SIGKILL after the grace period, their exits are journaled, and the spawner exits.
 * Single-threaded; no allocation in the child between fork and exec beyond what a
 * single-threaded fork allows.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* posix_spawn with a working directory (glibc 2.29+): the parent skips copying its page tables. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29)) && !defined(THEMIS_FORK_ONLY)
#define HAVE_SPAWN_CHDIR 1
#include <spawn.h>
#endif

extern char **environ;

enum { BY_NONE = 0, BY_TIMEOUT, BY_DEQUEUE, BY_INTERRUPT, BY_LOST_CLAIM };
static const char *const BY_NAME[] = {NULL, "timeout", "dequeue", "interrupt", "lost-claim"};

typedef struct step {
  struct step *next;
  char *key;
  long run_id, step_no, attempt;
  pid_t pid;
  int stopped_by;
  char started_at[40];
  double deadline; /* monotonic ms of the timeout, 0 = none */
  double kill_at;  /* monotonic ms of the SIGKILL after a stop, 0 = none */
} step_t;

static step_t *live = NULL;
static int live_count = 0;
static long grace_ms = 10000;
static int shutting_down = 0;
static double shutdown_deadline = 0;
static char host[256] = "localhost";
static char pid_ns[64] = "";
static pid_t self_pid = 0; /* readlink /proc/self/ns/pid: "pid:[4026531836]" */
/* Set by the SIGCHLD handler, which only runs inside ppoll (SIGCHLD is blocked everywhere else). */
static volatile sig_atomic_t child_exited = 0;
static char **base_env = NULL;
static size_t base_env_n = 0;
static int journal_fd = -1;
static char *journal_path = NULL;
static int journal_torn = 0; /* the last write was short: start the next line on its own */
static off_t journal_size = 0;     /* where the next line lands (we are the only writer) */
static off_t journal_reserved = 0; /* blocks allocated ahead up to here */
static int journal_no_reserve = 0; /* the file system cannot allocate ahead */
#define JOURNAL_RESERVE (64 * 1024)

/* ---------- output (buffered per loop turn; a dead packer's EPIPE is ignored) ---------- */

static char *out_buf = NULL;
static size_t out_len = 0, out_cap = 0;

static void out_append(const char *s, size_t n) {
  if (out_len + n > out_cap) {
    size_t cap = out_cap ? out_cap : 4096;
    while (cap < out_len + n) cap *= 2;
    char *b = realloc(out_buf, cap);
    if (!b) return;
    out_buf = b;
    out_cap = cap;
  }
  memcpy(out_buf + out_len, s, n);
  out_len += n;
}

/* stdout is non-blocking: a packer busy elsewhere never stalls reaping, timeouts or stops here;
   what the pipe does not take now stays buffered and goes when poll says it can. */
static void out_flush(void) {
  size_t off = 0;
  while (off < out_len) {
    ssize_t w = write(1, out_buf + off, out_len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      off = out_len; /* the packer is gone: nobody to tell */
      break;
    }
    off += (size_t)w;
  }
  if (off > 0) memmove(out_buf, out_buf + off, out_len - off);
  out_len -= off;
}

/* ---------- small helpers ---------- */

static double mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void iso_now(char *buf, size_t n) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + k, n - k, ".%03ldZ", ts.tv_nsec / 1000000L);
}

typedef struct {
  char *s;
  size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->s, cap);
    if (!p) return;
    b->s = p;
    b->cap = cap;
  }
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = 0;
}

static void sb_printf(sbuf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0) sb_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void sb_json_str(sbuf *b, const char *s) {
  sb_add(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char esc[8];
    if (*p == '"' || *p == '\\') {
      esc[0] = '\\';
      esc[1] = (char)*p;
      sb_add(b, esc, 2);
    } else if (*p < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", *p);
      sb_add(b, esc, 6);
    } else {
      sb_add(b, (const char *)p, 1);
    }
  }
  sb_add(b, "\"", 1);
}

static const struct {
  int num;
  const char *name;
} SIGNALS[] = {
    {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},       {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},   {SIGTRAP, "SIGTRAP"},
    {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},       {SIGFPE, "SIGFPE"},   {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"},
    {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},     {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},
    {SIGCHLD, "SIGCHLD"}, {SIGCONT, "SIGCONT"},     {SIGSTOP, "SIGSTOP"}, {SIGTSTP, "SIGTSTP"}, {SIGTTIN, "SIGTTIN"},
    {SIGTTOU, "SIGTTOU"}, {SIGURG, "SIGURG"},       {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"}, {SIGVTALRM, "SIGVTALRM"},
    {SIGPROF, "SIGPROF"}, {SIGWINCH, "SIGWINCH"},   {SIGSYS, "SIGSYS"},
#ifdef SIGIO
    {SIGIO, "SIGIO"},
#endif
#ifdef SIGPWR
    {SIGPWR, "SIGPWR"},
#endif
#ifdef SIGSTKFLT
    {SIGSTKFLT, "SIGSTKFLT"},
#endif
};

static const char *signal_name(int sig, char *buf, size_t n) {
  for (size_t i = 0; i < sizeof SIGNALS / sizeof SIGNALS[0]; i++)
    if (SIGNALS[i].num == sig) return SIGNALS[i].name;
  snprintf(buf, n, "SIG%d", sig);
  return buf;
}

static char *xstrdup(const char *s) {
  char *d = strdup(s);
  if (!d) {
    fprintf(stderr, "themis launcher: out of memory\n");
    exit(70);
  }
  return d;
}

/*
 * Keep blocks allocated ahead of the journal's end (FALLOC_FL_KEEP_SIZE: the file's size, all that
 * readers see, is unchanged), so exit records still land when the disk fills up or the quota runs
 * out while steps run: the last record a successor needs is never the one that finds no space.
 * A file system that cannot allocate ahead (NFS before 4.2, some parallel file systems) goes without.
 */
static void journal_reserve(void) {
  if (journal_fd < 0 || journal_no_reserve || journal_reserved - journal_size >= JOURNAL_RESERVE / 2) return;
  for (off_t len = JOURNAL_RESERVE; len >= 4096; len /= 4) {
    if (fallocate(journal_fd, FALLOC_FL_KEEP_SIZE, journal_size, len) == 0) {
      journal_reserved = journal_size + len;
      return;
    }
    if (errno == EOPNOTSUPP || errno == ENOSYS) {
      journal_no_reserve = 1;
      return;
    }
    if (errno != ENOSPC && errno != EDQUOT) return;
  }
}

static void journal_open(const char *file) {
  if (!*file || journal_fd >= 0) return;
  journal_path = xstrdup(file);
  journal_fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (journal_fd < 0) {
    fprintf(stderr, "themis launcher: cannot open %s: %s\n", file, strerror(errno));
    return;
  }
  struct stat st;
  if (fstat(journal_fd, &st) == 0) journal_size = journal_reserved = st.st_size;
  journal_reserve();
}

/* One journal line "<kind> <key> <json>\n" in a single write(2). */
static void journal_write(char kind, const char *key, const char *json, size_t len) {
  if (journal_fd < 0) return;
  sbuf line = {0};
  if (journal_torn) sb_add(&line, "\n", 1);
  char head[2] = {kind, ' '};
  sb_add(&line, head, 2);
  sb_add(&line, key, strlen(key));
  sb_add(&line, " ", 1);
  sb_add(&line, json, len);
  if (len == 0 || json[len - 1] != '\n') sb_add(&line, "\n", 1);
  if (!line.s) return;
  ssize_t w;
  do w = write(journal_fd, line.s, line.len);
  while (w < 0 && errno == EINTR);
  if (w < 0) fprintf(stderr, "themis launcher: cannot write %s: %s\n", journal_path, strerror(errno));
  else if ((size_t)w < line.len) fprintf(stderr, "themis launcher: short write to %s (%zd of %zu bytes)\n", journal_path, w, line.len);
  journal_torn = w < 0 || (size_t)w < line.len;
  if (w > 0) journal_size += w;
  free(line.s);
  journal_reserve();
}

static void append_log(const char *cwd, const char *log_name, const char *text) {
  char p[PATH_MAX];
  if (snprintf(p, sizeof p, "%s/%s", cwd, log_name) >= (int)sizeof p) return;
  int fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return;
  ssize_t w = write(fd, text, strlen(text));
  (void)w;
  close(fd);
}

/* The step's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or NULL. */
static int pid_start(pid_t pid, char *buf, size_t n) {
  char p[64], text[1024];
  snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t r = read(fd, text, sizeof text - 1);
  close(fd);
  if (r <= 0) return 0;
  text[r] = 0;
  char *s = strrchr(text, ')');
  if (!s || s[1] != ' ') return 0;
  s += 2;
  for (int i = 0; i < 19; i++) {
    s = strchr(s, ' ');
    if (!s) return 0;
    s++;
  }
  size_t k = strcspn(s, " ");
  if (k == 0 || k >= n) return 0;
  memcpy(buf, s, k);
  buf[k] = 0;
  return 1;
}

static int mkdir_p(const char *dir) {
  char p[PATH_MAX];
  size_t n = strlen(dir);
  if (n == 0 || n >= sizeof p) return -1;
  memcpy(p, dir, n + 1);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(p, 0777) != 0 && errno != EEXIST) return -1;
    *s = '/';
  }
  if (mkdir(p, 0777) != 0 && errno != EEXIST) return -1;
  return 0;
}

/* Move an existing log aside before a new attempt writes: run_0001.log, run_0002.log, ... */
static void rotate_log(const char *cwd, const char *log_name) {
  char from[PATH_MAX], to[PATH_MAX];
  if (snprintf(from, sizeof from, "%s/%s", cwd, log_name) >= (int)sizeof from) return;
  long taken = 0;
  DIR *d = opendir(cwd);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      const char *nm = e->d_name;
      size_t len = strlen(nm);
      if (len < 12 || strncmp(nm, "run_", 4) != 0 || strcmp(nm + len - 4, ".log") != 0) continue;
      size_t digits = 0;
      for (size_t i = 4; i < len - 4 && nm[i] >= '0' && nm[i] <= '9'; i++) digits++;
      if (digits == len - 8 && digits >= 4) taken++;
    }
    closedir(d);
  }
  struct stat st;
  for (long n = taken + 1;; n++) {
    if (snprintf(to, sizeof to, "%s/run_%04ld.log", cwd, n) >= (int)sizeof to) return;
    if (stat(to, &st) != 0) break;
  }
  if (rename(from, to) != 0) {
    /* the new attempt appends to the old log instead */
  }
}

/* ---------- steps ---------- */

static void signal_group(pid_t pid, int sig) {
  if (pid > 0) killpg(pid, sig);
}

static void finish(step_t *s, int wstatus, int have_status, int code_if_none) {
  /* Stragglers a step left in its group (backgrounded helpers) must not hold the cores we free. */
  signal_group(s->pid, SIGKILL);
  step_t **pp = &live;
  while (*pp && *pp != s) pp = &(*pp)->next;
  if (*pp) {
    *pp = s->next;
    live_count--;
  }
  char ended[40], sigbuf[16];
  iso_now(ended, sizeof ended);
  sbuf j = {0};
  sb_printf(&j, "{\"format\":1,\"runId\":%ld,\"step\":%ld,\"attempt\":%ld,\"code\":", s->run_id, s->step_no, s->attempt);
  const char *sig = NULL;
  if (have_status && WIFEXITED(wstatus)) sb_printf(&j, "%d", WEXITSTATUS(wstatus));
  else if (have_status && WIFSIGNALED(wstatus)) {
    sb_add(&j, "null", 4);
    sig = signal_name(WTERMSIG(wstatus), sigbuf, sizeof sigbuf);
  } else if (code_if_none >= 0) sb_printf(&j, "%d", code_if_none);
  else sb_add(&j, "null", 4);
  sb_add(&j, ",\"signal\":", 10);
  if (sig) sb_json_str(&j, sig);
  else sb_add(&j, "null", 4);
  sb_add(&j, ",\"stoppedBy\":", 13);
  if (s->stopped_by) sb_json_str(&j, BY_NAME[s->stopped_by]);
  else sb_add(&j, "null", 4);
  sb_add(&j, ",\"startedAt\":", 13);
  sb_json_str(&j, s->started_at);
  sb_add(&j, ",\"endedAt\":", 11);
  sb_json_str(&j, ended);
  sb_add(&j, ",\"host\":", 8);
  sb_json_str(&j, host);
  sb_printf(&j, ",\"pid\":%d}", s->pid > 0 ? (int)s->pid : 0);
  if (j.s) {
    sb_add(&j, "\n", 1);
    /* Durable before the packer hears of it: a packer that dies now leaves it to its successor. */
    journal_write('E', s->key, j.s, j.len);
    out_append("E ", 2);
    out_append(s->key, strlen(s->key));
    out_append(" ", 1);
    out_append(j.s, j.len);
    free(j.s);
  }
  free(s->key);
  free(s);
}

static step_t *by_pid(pid_t pid) {
  for (step_t *s = live; s; s = s->next)
    if (s->pid == pid) return s;
  return NULL;
}

static void reap(void) {
  for (;;) {
    int st;
    pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid <= 0) {
      if (pid < 0 && errno == EINTR) continue;
      return;
    }
    step_t *s = by_pid(pid);
    if (s) finish(s, st, 1, -1);
  }
}

/* TERM the step's process group now, KILL it after the grace period. */
static void stop(step_t *s, int reason) {
  /* Already exited on its own (not reaped yet): its own exit status stands. */
  int st;
  if (s->pid > 0 && waitpid(s->pid, &st, WNOHANG) == s->pid) {
    finish(s, st, 1, -1);
    return;
  }
  if (!s->stopped_by) s->stopped_by = reason;
  if (s->pid <= 0) return;
  signal_group(s->pid, SIGTERM);
  if (s->kill_at == 0) s->kill_at = mono_ms() + (double)grace_ms;
}

typedef struct {
  const char *key, *cwd, *log_name, *log_spare;
  long run_id, step_no, attempt, timeout_ms;
  long argc, envc;
  const char **argv; /* NULL-terminated */
  const char **env;  /* additions, K=V */
} spawn_req;

static char **merged_env(const spawn_req *r) {
  char **envp = malloc(sizeof(char *) * (base_env_n + (size_t)r->envc + 1));
  if (!envp) return NULL;
  size_t n = 0;
  for (size_t i = 0; i < base_env_n; i++) {
    const char *kv = base_env[i];
    const char *eq = strchr(kv, '=');
    size_t kl = eq ? (size_t)(eq - kv) : strlen(kv);
    int overridden = 0;
    for (long k = 0; k < r->envc && !overridden; k++)
      if (strncmp(r->env[k], kv, kl) == 0 && r->env[k][kl] == '=') overridden = 1;
    if (!overridden) envp[n++] = (char *)kv;
  }
  for (long k = 0; k < r->envc; k++) envp[n++] = (char *)r->env[k];
  envp[n] = NULL;
  return envp;
}

/* Link the empty file gen made (spare) into place as the log: link never replaces an existing log
   and, unlike creating a file, allocates no inode. -1 when there is no spare (or it cannot be used). */
static int adopt_spare(const char *p, const char *spare) {
  if (link(spare, p) != 0) return -1;
  unlink(spare);
  return open(p, O_WRONLY | O_APPEND | O_TRUNC | O_CLOEXEC);
}

static int open_log(const char *cwd, const char *log_name, const char *spare) {
  char p[PATH_MAX];
  if (snprintf(p, sizeof p, "%s/%s", cwd, log_name) >= (int)sizeof p) {
    errno = ENAMETOOLONG;
    return -1;
  }
  /* gen leaves an empty run.log: a first attempt writes into it (one open, nothing created). */
  int fd = open(p, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC); /* a log replaced by a link: rotated aside, never written through */
  if (fd >= 0) {
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size == 0) return fd;
    close(fd);
  }
  if (spare && *spare) {
    fd = adopt_spare(p, spare);
    if (fd >= 0) return fd;
    if (errno == EEXIST) {
      rotate_log(cwd, log_name);
      if ((fd = adopt_spare(p, spare)) >= 0) return fd;
    }
  }
  /* No log yet (a step in another directory): create it. */
  fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd >= 0) return fd;
  if (errno == EEXIST) rotate_log(cwd, log_name);
  else if (errno == ENOENT && mkdir_p(cwd) != 0) return -1;
  return open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
}

#ifdef HAVE_SPAWN_CHDIR
/* A bare program name looked up in the step's PATH, as execvp in the child would; NULL: not found. */
static const char *resolve_program(const char *prog, char **envp, const char *cwd, char *buf, size_t n) {
  if (strchr(prog, '/')) return prog;
  const char *path = "/bin:/usr/bin";
  for (char **e = envp; *e; e++)
    if (strncmp(*e, "PATH=", 5) == 0) {
      path = *e + 5;
      break;
    }
  for (const char *p = path;;) {
    const char *colon = strchr(p, ':');
    int len = colon ? (int)(colon - p) : (int)strlen(p);
    int k;
    if (len > 0 && p[0] == '/') k = snprintf(buf, n, "%.*s/%s", len, p, prog);
    else k = snprintf(buf, n, "%s/%.*s%s%s", cwd, len, p, len ? "/" : "", prog); /* relative entry: from the step's cwd */
    struct stat st;
    if (k > 0 && (size_t)k < n && stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0) return buf;
    if (!colon) return NULL;
    p = colon + 1;
  }
}

/*
 * Start the step with posix_spawn: own process group, default signals, empty mask, stdin from
 * /dev/null, stdout and stderr to the log, the step's cwd. Returns the pid, or -1 with *err set;
 * ENOEXEC (a script without #!) is left to the fork path, whose execvp runs it with /bin/sh.
 */
static pid_t spawn_step(const spawn_req *r, int fd, char **envp, int *err) {
  char found[PATH_MAX];
  const char *prog = resolve_program(r->argv[0], envp, r->cwd, found, sizeof found);
  if (!prog) {
    *err = ENOENT;
    return -1;
  }
  posix_spawnattr_t at;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_init(&at);
  posix_spawn_file_actions_init(&fa);
  sigset_t none, dfl;
  sigemptyset(&none);
  sigemptyset(&dfl);
  int reset[] = {SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGXCPU, SIGHUP, SIGPIPE, SIGCHLD, SIGQUIT};
  for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++) sigaddset(&dfl, reset[i]);
  posix_spawnattr_setpgroup(&at, 0);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &dfl);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawn_file_actions_adddup2(&fa, fd, 1);
  posix_spawn_file_actions_adddup2(&fa, fd, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addchdir_np(&fa, r->cwd);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, prog, &fa, &at, (char *const *)r->argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (rc != 0) {
    *err = rc;
    return -1;
  }
  return pid;
}
#endif

static void start(const spawn_req *r) {
  step_t *s = calloc(1, sizeof *s);
  if (!s) exit(70);
  s->key = xstrdup(r->key);
  s->run_id = r->run_id;
  s->step_no = r->step_no;
  s->attempt = r->attempt;
  iso_now(s->started_at, sizeof s->started_at);
  s->next = live;
  live = s;
  live_count++;
  char msg[PATH_MAX + 256];
  if (shutting_down) {
    s->stopped_by = BY_INTERRUPT;
    finish(s, 0, 0, -1);
    return;
  }
  int fd = open_log(r->cwd, r->log_name, r->log_spare);
  if (fd < 0) {
    snprintf(msg, sizeof msg, "themis: cannot start %s: %s\n", r->argv[0], strerror(errno));
    append_log(r->cwd, r->log_name, msg);
    finish(s, 0, 0, 126);
    return;
  }
  char **envp = merged_env(r);
  pid_t pid = -1;
  /* posix_spawn returns after the exec, in its own group already; a forked child may not be yet. */
  int grouped = 0;
#ifdef HAVE_SPAWN_CHDIR
  int spawn_errno = ENOMEM;
  if (envp) {
    pid = spawn_step(r, fd, envp, &spawn_errno);
    grouped = pid > 0;
    if (pid < 0 && spawn_errno != ENOEXEC) {
      free(envp);
      close(fd);
      snprintf(msg, sizeof msg, "themis: cannot start %s: %s\n", r->argv[0], strerror(spawn_errno));
      append_log(r->cwd, r->log_name, msg);
      finish(s, 0, 0, spawn_errno == ENOENT ? 127 : 126);
      return;
    }
  }
#endif
  if (envp && pid < 0) pid = fork();
  if (pid == 0) {
    /* The child: own process group, default signals, stdin /dev/null, output to the log. */
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int reset[] = {SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGXCPU, SIGHUP, SIGPIPE, SIGCHLD, SIGQUIT};
    for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++) signal(reset[i], SIG_DFL);
    if (fd != 1 && fd != 2) {
      dup2(fd, 1);
      dup2(fd, 2);
    } else {
      int t = dup(fd);
      dup2(t, 1);
      dup2(t, 2);
    }
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0 && null != 0) {
      dup2(null, 0);
      close(null);
    }
    if (chdir(r->cwd) != 0) {
      int e = errno;
      dprintf(2, "themis: cannot start %s: cannot enter %s: %s\n", r->argv[0], r->cwd, strerror(e));
      _exit(e == ENOENT ? 127 : 126);
    }
    environ = envp;
    execvp(r->argv[0], (char *const *)r->argv);
    int e = errno;
    dprintf(2, "themis: cannot start %s: %s\n", r->argv[0], strerror(e));
    _exit(e == ENOENT ? 127 : 126);
  }
  int fork_errno = errno;
  free(envp);
  close(fd);
  if (pid < 0) {
    snprintf(msg, sizeof msg, "themis: cannot start %s: %s\n", r->argv[0], strerror(fork_errno));
    append_log(r->cwd, r->log_name, msg);
    finish(s, 0, 0, 126);
    return;
  }
  /* Also here, so that a signal to the group right after this cannot miss the child. */
  if (!grouped) setpgid(pid, pid);
  s->pid = pid;
  char ps[32] = "";
  int has_start = pid_start(pid, ps, sizeof ps);
  sbuf j = {0};
  sb_printf(&j, "{\"format\":1,\"runId\":%ld,\"step\":%ld,\"attempt\":%ld,\"host\":", r->run_id, r->step_no, r->attempt);
  sb_json_str(&j, host);
  sb_printf(&j, ",\"pid\":%d,\"pgid\":%d,\"pidStart\":", (int)pid, (int)pid);
  if (has_start) sb_json_str(&j, ps);
  else sb_add(&j, "null", 4);
  sb_add(&j, ",\"startedAt\":", 13);
  sb_json_str(&j, s->started_at);
  sb_printf(&j, ",\"launcherPid\":%d,\"pidNs\":", (int)self_pid);
  if (pid_ns[0]) sb_json_str(&j, pid_ns);
  else sb_add(&j, "null", 4);
  sb_add(&j, "}", 1);
  if (j.s) journal_write('S', s->key, j.s, j.len);
  free(j.s);
  if (r->timeout_ms > 0) s->deadline = mono_ms() + (double)r->timeout_ms;
  snprintf(msg, sizeof msg, "S %s %d\n", s->key, (int)pid);
  out_append(msg, strlen(msg));
}

/* The packer is gone or asked us to quit: stop every step, record their exits, then exit. */
static void shutdown_all(void) {
  if (shutting_down) return;
  shutting_down = 1;
  shutdown_deadline = mono_ms() + (double)grace_ms + 5000;
  step_t *s = live;
  while (s) {
    step_t *next = s->next; /* stop() may finish (and free) s */
    stop(s, BY_INTERRUPT);
    s = next;
  }
}

/* ---------- input ---------- */

static char *in_buf = NULL;
static size_t in_len = 0, in_cap = 0;

/* The next NUL-terminated field at *pos, or NULL when the message is not complete yet. */
static const char *field(size_t *pos) {
  if (*pos >= in_len) return NULL;
  char *start = in_buf + *pos;
  char *nul = memchr(start, 0, in_len - *pos);
  if (!nul) return NULL;
  *pos = (size_t)(nul - in_buf) + 1;
  return start;
}

static int parse_long(const char *s, long *v) {
  char *end;
  errno = 0;
  long x = strtol(s, &end, 10);
  if (errno || end == s || *end) return 0;
  *v = x;
  return 1;
}

static void protocol_error(const char *what) {
  fprintf(stderr, "themis launcher: protocol error: %s\n", what);
  shutdown_all();
}

/* Parse one message at the start of in_buf: bytes consumed, 0 when incomplete. */
static size_t one_message(void) {
  size_t pos = 0;
  const char *t = field(&pos);
  if (!t) return 0;
  if (strcmp(t, "I") == 0) {
    const char *g = field(&pos), *jp = g ? field(&pos) : NULL;
    if (!jp) return 0;
    long v;
    if (parse_long(g, &v) && v >= 0) grace_ms = v;
    journal_open(jp);
    return pos;
  }
  if (strcmp(t, "Q") == 0) {
    shutdown_all();
    return pos;
  }
  if (strcmp(t, "K") == 0) {
    const char *key = field(&pos), *why = key ? field(&pos) : NULL;
    if (!why) return 0;
    int reason = BY_INTERRUPT;
    for (int i = 1; i <= BY_LOST_CLAIM; i++)
      if (strcmp(why, BY_NAME[i]) == 0) reason = i;
    for (step_t *s = live; s; s = s->next)
      if (strcmp(s->key, key) == 0) {
        stop(s, reason);
        break;
      }
    return pos;
  }
  if (strcmp(t, "S") == 0) {
    spawn_req r;
    memset(&r, 0, sizeof r);
    const char *f[8];
    for (int i = 0; i < 8; i++)
      if (!(f[i] = field(&pos))) return 0;
    const char *nargv = field(&pos);
    if (!nargv) return 0;
    r.key = f[0];
    if (!parse_long(f[1], &r.run_id) || !parse_long(f[2], &r.step_no) || !parse_long(f[3], &r.attempt) || !parse_long(f[4], &r.timeout_ms) ||
        !parse_long(nargv, &r.argc) || r.argc < 1 || r.argc > 1000000) {
      protocol_error("bad spawn request");
      return in_len;
    }
    r.cwd = f[5];
    r.log_name = f[6];
    r.log_spare = f[7];
    const char **argv = malloc(sizeof(char *) * ((size_t)r.argc + 1));
    if (!argv) exit(70);
    for (long i = 0; i < r.argc; i++)
      if (!(argv[i] = field(&pos))) {
        free(argv);
        return 0;
      }
    argv[r.argc] = NULL;
    const char *nenv = field(&pos);
    if (!nenv) {
      free(argv);
      return 0;
    }
    if (!parse_long(nenv, &r.envc) || r.envc < 0 || r.envc > 1000000) {
      free(argv);
      protocol_error("bad spawn environment");
      return in_len;
    }
    const char **env = malloc(sizeof(char *) * ((size_t)r.envc + 1));
    if (!env) exit(70);
    for (long i = 0; i < r.envc; i++)
      if (!(env[i] = field(&pos))) {
        free(argv);
        free(env);
        return 0;
      }
    r.argv = argv;
    r.env = env;
    start(&r);
    free(argv);
    free(env);
    return pos;
  }
  protocol_error("unknown message");
  return in_len;
}

/* Read what stdin has; 0 when it closed (the packer is gone). */
static int read_input(void) {
  for (;;) {
    if (in_cap - in_len < 65536) {
      size_t cap = in_cap ? in_cap * 2 : 131072;
      char *b = realloc(in_buf, cap);
      if (!b) exit(70);
      in_buf = b;
      in_cap = cap;
    }
    ssize_t r = read(0, in_buf + in_len, in_cap - in_len);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 1;
      return 0;
    }
    if (r == 0) return 0;
    in_len += (size_t)r;
    return 1;
  }
}

static void handle_input(void) {
  size_t off = 0;
  while (off < in_len) {
    /* Parse from the front: shift what is left (messages are small, this is rare work). */
    if (off > 0) {
      memmove(in_buf, in_buf + off, in_len - off);
      in_len -= off;
      off = 0;
    }
    size_t used = one_message();
    if (used == 0) break;
    off = used;
  }
  if (off > 0) {
    memmove(in_buf, in_buf + off, in_len - off);
    in_len -= off;
  }
}

/* ---------- main loop ---------- */

static void on_sigchld(int sig) {
  (void)sig;
  child_exited = 1;
}

static void on_ignored(int sig) { (void)sig; }

int main(void) {
  self_pid = getpid();
  if (gethostname(host, sizeof host - 1) != 0) strcpy(host, "localhost");
  ssize_t nsl = readlink("/proc/self/ns/pid", pid_ns, sizeof pid_ns - 1);
  pid_ns[nsl > 0 ? nsl : 0] = '\0';
  host[sizeof host - 1] = 0;
  for (char **e = environ; *e; e++) base_env_n++;
  base_env = environ;
  fcntl(0, F_SETFD, FD_CLOEXEC);
  fcntl(1, F_SETFD, FD_CLOEXEC);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGCHLD, &sa, NULL);
  /* Terminal and scheduler signals are the packer's to handle; it tells us what to stop. Dying
     here on SIGINT would orphan every step. */
  sa.sa_handler = on_ignored;
  sa.sa_flags = SA_RESTART;
  int ignored[] = {SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGXCPU, SIGHUP};
  for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) sigaction(ignored[i], &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  /* SIGCHLD is let in only while ppoll waits: an exit during the loop's work stays pending and
     ends the next wait at once, so none is missed, with no self-pipe to write, poll and drain at
     every exit. Steps start with an empty mask (posix_spawnattr_setsigmask, or the fork path's). */
  sigset_t chld, waiting;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &waiting);
  sigdelset(&waiting, SIGCHLD);

  char ready[64];
  snprintf(ready, sizeof ready, "R %d\n", (int)getpid());
  out_append(ready, strlen(ready));
  out_flush();

  int input_open = 1;
  for (;;) {
    double now = mono_ms();
    double next = 0;
    for (step_t *s = live; s; s = s->next) {
      if (s->deadline > 0 && (next == 0 || s->deadline < next)) next = s->deadline;
      if (s->kill_at > 0 && (next == 0 || s->kill_at < next)) next = s->kill_at;
    }
    if (shutting_down && (next == 0 || shutdown_deadline < next)) next = shutdown_deadline;
    int timeout = -1;
    if (next > 0) timeout = next <= now ? 0 : next - now > 60000 ? 60000 : (int)(next - now) + 1;
    /* fd -1 is skipped: polling a pipe whose reader is gone would report POLLERR at once, forever. */
    struct pollfd fds[2] = {{out_len > 0 ? 1 : -1, POLLOUT, 0}, {0, POLLIN, 0}};
    struct timespec ts = {timeout / 1000, (long)(timeout % 1000) * 1000000L};
    int n = ppoll(fds, input_open ? 2 : 1, timeout < 0 ? NULL : &ts, &waiting);
    if (n < 0 && errno != EINTR) return 70;
    if (child_exited) {
      child_exited = 0;
      reap();
    }
    if (input_open && n > 0 && fds[1].revents) {
      if (!read_input()) {
        input_open = 0;
        handle_input();
        shutdown_all();
      } else {
        handle_input();
      }
    }
    now = mono_ms();
    step_t *s = live;
    while (s) {
      step_t *nx = s->next;
      if (s->deadline > 0 && now >= s->deadline) {
        s->deadline = 0;
        stop(s, BY_TIMEOUT);
      } else if (s->kill_at > 0 && now >= s->kill_at) {
        s->kill_at = 0;
        signal_group(s->pid, SIGKILL);
      }
      s = nx;
    }
    out_flush();
    if (shutting_down && (live_count == 0 || mono_ms() >= shutdown_deadline)) {
      /* The last exits must reach a packer that is still reading: wait for the pipe this once. */
      fcntl(1, F_SETFL, fcntl(1, F_GETFL) & ~O_NONBLOCK);
      out_flush();
      return 0;
    }
  }
}
