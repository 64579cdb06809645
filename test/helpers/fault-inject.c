// LD_PRELOAD shim that fails the Nth file operation under one or more path prefixes, counted across every
// thread and every process of one run (the counters live in a shared file, mmap'd, bumped with atomic ops).
// Node 20 (libuv inside the binary) reaches the disk through these libc entry points, checked with strace and
// the binary's dynamic symbols: open64 (→ openat), write, pwrite64, writev, pwritev64, fsync, fdatasync,
// rename, sendfile64, and syscall() for copy_file_range (fs.copyFile). The other names are covered too.
//
//   FERRY_FAULT_STATE=/abs/file    shared counters (created empty by the caller; required)
//   FERRY_FAULT_PREFIX=/a:/b       only paths starting with one of these (an fd's path read from /proc/self/fd)
//   FERRY_FAULT_OPS=write,fsync,open,rename   kinds counted, in one sequence (default: all four)
//   FERRY_FAULT_NTH=N              fail the Nth counted operation (1-based); 0 = only count
//   FERRY_FAULT_MODE=once|sticky   sticky: the Nth and every later counted operation fail
//   FERRY_FAULT_ERRNO=28           overrides the errno: write ENOSPC, fsync EIO, open EACCES, rename EIO
//   FERRY_FAULT_LOG=/abs/file      each counted operation appended as "N kind path" (for choosing points)
//
// Descriptors that do not name a file under a prefix (libuv's eventfd and pipes, stdout) are never touched.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum kind { K_WRITE, K_FSYNC, K_OPEN, K_RENAME, K_COUNT };
static const char *kind_names[K_COUNT] = {"write", "fsync", "open", "rename"};
static const int kind_errno[K_COUNT] = {ENOSPC, EIO, EACCES, EIO};

struct shared {
  long counted;             // operations counted so far (all selected kinds)
  long by_kind[K_COUNT];    // operations of each kind under the prefixes (selected or not)
  long failed;              // operations failed
  long fired_at;            // the first failed operation's number
  int fired_kind;
  char fired_path[1024];
};

static struct shared *state;
static int selected[K_COUNT] = {1, 1, 1, 1};
static long nth;
static int sticky;
static int errno_override;
static const char *log_path;
static char prefixes[4096];
static int ready;
/** fds opened under a prefix (confirmed again by their path when used: a number may be reused) */
static unsigned char marked[65536];

#define REAL(name, ret, args) static ret(*real_##name) args;
REAL(open, int, (const char *, int, ...))
REAL(open64, int, (const char *, int, ...))
REAL(openat, int, (int, const char *, int, ...))
REAL(openat64, int, (int, const char *, int, ...))
REAL(creat, int, (const char *, mode_t))
REAL(creat64, int, (const char *, mode_t))
REAL(write, ssize_t, (int, const void *, size_t))
REAL(pwrite, ssize_t, (int, const void *, size_t, off_t))
REAL(pwrite64, ssize_t, (int, const void *, size_t, off_t))
REAL(writev, ssize_t, (int, const struct iovec *, int))
REAL(pwritev, ssize_t, (int, const struct iovec *, int, off_t))
REAL(pwritev64, ssize_t, (int, const struct iovec *, int, off_t))
REAL(pwritev2, ssize_t, (int, const struct iovec *, int, off_t, int))
REAL(sendfile, ssize_t, (int, int, off_t *, size_t))
REAL(sendfile64, ssize_t, (int, int, off_t *, size_t))
REAL(copy_file_range, ssize_t, (int, off_t *, int, off_t *, size_t, unsigned))
REAL(fsync, int, (int))
REAL(fdatasync, int, (int))
REAL(rename, int, (const char *, const char *))
REAL(renameat, int, (int, const char *, int, const char *))
REAL(renameat2, int, (int, const char *, int, const char *, unsigned))
REAL(syscall, long, (long, ...))

#define RESOLVE(name) if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name)

static void resolve_all(void) {
  RESOLVE(open); RESOLVE(open64); RESOLVE(openat); RESOLVE(openat64); RESOLVE(creat); RESOLVE(creat64);
  RESOLVE(write); RESOLVE(pwrite); RESOLVE(pwrite64); RESOLVE(writev); RESOLVE(pwritev); RESOLVE(pwritev64);
  RESOLVE(pwritev2); RESOLVE(sendfile); RESOLVE(sendfile64); RESOLVE(copy_file_range); RESOLVE(fsync);
  RESOLVE(fdatasync); RESOLVE(rename); RESOLVE(renameat); RESOLVE(renameat2); RESOLVE(syscall);
}

__attribute__((constructor)) static void init(void) {
  resolve_all();
  const char *file = getenv("FERRY_FAULT_STATE");
  const char *prefix = getenv("FERRY_FAULT_PREFIX");
  if (!file || !prefix || !*prefix) return;
  int fd = (int)real_syscall(SYS_openat, AT_FDCWD, file, O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return;
  if (ftruncate(fd, sizeof(struct shared)) != 0) { close(fd); return; }
  void *m = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return;
  state = m;
  strncpy(prefixes, prefix, sizeof prefixes - 1);
  const char *ops = getenv("FERRY_FAULT_OPS");
  if (ops && *ops) for (int k = 0; k < K_COUNT; k++) selected[k] = strstr(ops, kind_names[k]) != NULL;
  const char *n = getenv("FERRY_FAULT_NTH");
  nth = n ? atol(n) : 0;
  const char *mode = getenv("FERRY_FAULT_MODE");
  sticky = mode && strcmp(mode, "sticky") == 0;
  const char *e = getenv("FERRY_FAULT_ERRNO");
  errno_override = e ? atoi(e) : 0;
  log_path = getenv("FERRY_FAULT_LOG");
  ready = 1;
}

static int under_prefix(const char *path) {
  for (const char *p = prefixes; *p;) {
    const char *end = strchr(p, ':');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len && strncmp(path, p, len) == 0) return 1;
    if (!end) break;
    p = end + 1;
  }
  return 0;
}

/** The path of an open fd, or "" (a pipe, an eventfd and a socket read as "pipe:[…]" and so never match). */
static void fd_path(int fd, char *out, size_t size) {
  char link[64] = "/proc/self/fd/";
  char digits[16];
  int i = 0;
  unsigned v = (unsigned)fd;
  do { digits[i++] = (char)('0' + v % 10); v /= 10; } while (v && i < 15);
  size_t at = strlen(link);
  while (i) link[at++] = digits[--i];
  link[at] = 0;
  ssize_t len = readlink(link, out, size - 1);
  out[len > 0 ? len : 0] = 0;
}

/** `path` made absolute against `dirfd` (AT_FDCWD: the working folder). */
static void absolute(int dirfd, const char *path, char *out, size_t size) {
  if (!path) { out[0] = 0; return; }
  if (path[0] == '/') { strncpy(out, path, size - 1); out[size - 1] = 0; return; }
  char base[2048];
  if (dirfd == AT_FDCWD) { if (!getcwd(base, sizeof base)) base[0] = 0; }
  else fd_path(dirfd, base, sizeof base);
  size_t b = strlen(base);
  if (b + 1 + strlen(path) + 1 > size) { out[0] = 0; return; }
  memcpy(out, base, b);
  out[b] = '/';
  strcpy(out + b + 1, path);
}

static void append_log(long n, int kind, const char *path) {
  if (!log_path) return;
  char line[1200];
  char num[24];
  int i = 0;
  long v = n;
  do { num[i++] = (char)('0' + v % 10); v /= 10; } while (v && i < 23);
  size_t at = 0;
  while (i) line[at++] = num[--i];
  line[at++] = ' ';
  size_t kl = strlen(kind_names[kind]);
  memcpy(line + at, kind_names[kind], kl);
  at += kl;
  line[at++] = ' ';
  size_t pl = strlen(path);
  if (pl > sizeof line - at - 2) pl = sizeof line - at - 2;
  memcpy(line + at, path, pl);
  at += pl;
  line[at++] = '\n';
  int fd = (int)real_syscall(SYS_openat, AT_FDCWD, log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  real_write(fd, line, at);
  close(fd);
}

/** Counts an operation of `kind` on `path` (already known to be under a prefix); 1 when it must fail. */
static int count(int kind, const char *path) {
  __atomic_add_fetch(&state->by_kind[kind], 1, __ATOMIC_SEQ_CST);
  if (!selected[kind]) return 0;
  long n = __atomic_add_fetch(&state->counted, 1, __ATOMIC_SEQ_CST);
  append_log(n, kind, path);
  if (nth <= 0 || (sticky ? n < nth : n != nth)) return 0;
  __atomic_add_fetch(&state->failed, 1, __ATOMIC_SEQ_CST);
  long none = 0;
  if (__atomic_compare_exchange_n(&state->fired_at, &none, n, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    state->fired_kind = kind;
    strncpy(state->fired_path, path, sizeof state->fired_path - 1);
  }
  return 1;
}

static int fail(int kind) {
  errno = errno_override ? errno_override : kind_errno[kind];
  return -1;
}

/** 1 when an operation of `kind` on fd must fail; only fds opened under a prefix are looked at. */
static int fd_fault(int kind, int fd) {
  if (!ready || fd < 0) return 0;
  if (fd < (int)sizeof marked && !__atomic_load_n(&marked[fd], __ATOMIC_RELAXED)) return 0;
  char path[2048];
  fd_path(fd, path, sizeof path);
  return path[0] == '/' && under_prefix(path) && count(kind, path);
}

static int open_fault(int dirfd, const char *path, int flags, char *full, size_t size) {
  full[0] = 0;
  if (!ready) return 0;
  absolute(dirfd, path, full, size);
  if (!full[0] || !under_prefix(full)) return 0;
  return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) && count(K_OPEN, full);
}

/** Notes whether a new fd names a file under a prefix. */
static int opened(int fd, const char *full) {
  if (fd >= 0 && fd < (int)sizeof marked) __atomic_store_n(&marked[fd], (unsigned char)(full[0] && under_prefix(full)), __ATOMIC_RELAXED);
  return fd;
}

#define MODE_ARG(flags) mode_t mode = 0; if ((flags) & (O_CREAT | __O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
#define OPEN_BODY(name, dirfd, call) \
  char full[2048]; \
  if (open_fault(dirfd, path, flags, full, sizeof full)) return fail(K_OPEN); \
  RESOLVE(name); \
  return opened(call, full);

int open(const char *path, int flags, ...) { MODE_ARG(flags); OPEN_BODY(open, AT_FDCWD, real_open(path, flags, mode)) }
int open64(const char *path, int flags, ...) { MODE_ARG(flags); OPEN_BODY(open64, AT_FDCWD, real_open64(path, flags, mode)) }
int openat(int dirfd, const char *path, int flags, ...) { MODE_ARG(flags); OPEN_BODY(openat, dirfd, real_openat(dirfd, path, flags, mode)) }
int openat64(int dirfd, const char *path, int flags, ...) { MODE_ARG(flags); OPEN_BODY(openat64, dirfd, real_openat64(dirfd, path, flags, mode)) }
int creat(const char *path, mode_t mode) { int flags = O_CREAT | O_WRONLY | O_TRUNC; OPEN_BODY(creat, AT_FDCWD, real_creat(path, mode)) }
int creat64(const char *path, mode_t mode) { int flags = O_CREAT | O_WRONLY | O_TRUNC; OPEN_BODY(creat64, AT_FDCWD, real_creat64(path, mode)) }

#define FD_CALL(kind, name, fd, call) \
  if (fd_fault(kind, fd)) return fail(kind); \
  RESOLVE(name); \
  return call;

ssize_t write(int fd, const void *buf, size_t n) { FD_CALL(K_WRITE, write, fd, real_write(fd, buf, n)) }
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) { FD_CALL(K_WRITE, pwrite, fd, real_pwrite(fd, buf, n, off)) }
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { FD_CALL(K_WRITE, pwrite64, fd, real_pwrite64(fd, buf, n, off)) }
ssize_t writev(int fd, const struct iovec *iov, int cnt) { FD_CALL(K_WRITE, writev, fd, real_writev(fd, iov, cnt)) }
ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) { FD_CALL(K_WRITE, pwritev, fd, real_pwritev(fd, iov, cnt, off)) }
ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off) { FD_CALL(K_WRITE, pwritev64, fd, real_pwritev64(fd, iov, cnt, off)) }
ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int fl) { FD_CALL(K_WRITE, pwritev2, fd, real_pwritev2(fd, iov, cnt, off, fl)) }
ssize_t sendfile(int out, int in, off_t *off, size_t n) { FD_CALL(K_WRITE, sendfile, out, real_sendfile(out, in, off, n)) }
ssize_t sendfile64(int out, int in, off_t *off, size_t n) { FD_CALL(K_WRITE, sendfile64, out, real_sendfile64(out, in, off, n)) }
ssize_t copy_file_range(int in, off_t *ino, int out, off_t *outo, size_t n, unsigned fl) { FD_CALL(K_WRITE, copy_file_range, out, real_copy_file_range(in, ino, out, outo, n, fl)) }
int fsync(int fd) { FD_CALL(K_FSYNC, fsync, fd, real_fsync(fd)) }
int fdatasync(int fd) { FD_CALL(K_FSYNC, fdatasync, fd, real_fdatasync(fd)) }

static int rename_fault(int from_dir, const char *from, int to_dir, const char *to) {
  if (!ready) return 0;
  char a[2048], b[2048];
  absolute(from_dir, from, a, sizeof a);
  absolute(to_dir, to, b, sizeof b);
  if (under_prefix(b)) return count(K_RENAME, b);
  return under_prefix(a) && count(K_RENAME, a);
}

int rename(const char *from, const char *to) {
  if (rename_fault(AT_FDCWD, from, AT_FDCWD, to)) return fail(K_RENAME);
  RESOLVE(rename);
  return real_rename(from, to);
}
int renameat(int fd1, const char *from, int fd2, const char *to) {
  if (rename_fault(fd1, from, fd2, to)) return fail(K_RENAME);
  RESOLVE(renameat);
  return real_renameat(fd1, from, fd2, to);
}
int renameat2(int fd1, const char *from, int fd2, const char *to, unsigned flags) {
  if (rename_fault(fd1, from, fd2, to)) return fail(K_RENAME);
  RESOLVE(renameat2);
  return real_renameat2(fd1, from, fd2, to, flags);
}

/** libuv calls copy_file_range (and a few others) through syscall(); the rest pass straight on. */
long syscall(long number, ...) {
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long);
  va_end(ap);
  RESOLVE(syscall);
  if (number == SYS_copy_file_range && fd_fault(K_WRITE, (int)a[2])) return fail(K_WRITE);
  if (number == SYS_renameat2 && rename_fault((int)a[0], (const char *)a[1], (int)a[2], (const char *)a[3])) return fail(K_RENAME);
  return real_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
