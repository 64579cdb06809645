// LD_PRELOAD shim: fails the Nth open-for-write (O_WRONLY, O_RDWR or O_CREAT) of a file under a path prefix,
// counted across all threads of the process, with a chosen errno. Other opens pass through untouched, so
// libuv's own descriptors (eventfd, pipes) never fail.
//   FERRY_FAULT_PREFIX=/abs/dir   FERRY_FAULT_NTH=3 (1-based; 0 = never fail, only count)   FERRY_FAULT_ERRNO=13
//   FERRY_FAULT_COUNT=/abs/file   (the number of such opens is written there at exit)
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long seen;

static int hit(int dirfd, const char *path, int flags) {
  if (!(flags & (O_WRONLY | O_RDWR | O_CREAT))) return 0;
  const char *prefix = getenv("FERRY_FAULT_PREFIX");
  if (!prefix || !path) return 0;
  char full[4096];
  if (path[0] != '/' && dirfd == AT_FDCWD) {
    char cwd[2048];
    if (!getcwd(cwd, sizeof cwd)) return 0;
    snprintf(full, sizeof full, "%s/%s", cwd, path);
  } else {
    snprintf(full, sizeof full, "%s", path);
  }
  if (strncmp(full, prefix, strlen(prefix)) != 0) return 0;
  long n = __atomic_add_fetch(&seen, 1, __ATOMIC_SEQ_CST);
  const char *nth = getenv("FERRY_FAULT_NTH");
  return nth && atol(nth) == n;
}

static int fault(void) {
  const char *e = getenv("FERRY_FAULT_ERRNO");
  errno = e ? atoi(e) : EIO;
  return -1;
}

#define MODE_ARG(flags) mode_t mode = 0; if ((flags) & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }

int open(const char *path, int flags, ...) {
  MODE_ARG(flags);
  if (hit(AT_FDCWD, path, flags)) return fault();
  int (*real)(const char *, int, ...) = dlsym(RTLD_NEXT, "open");
  return real(path, flags, mode);
}
int open64(const char *path, int flags, ...) {
  MODE_ARG(flags);
  if (hit(AT_FDCWD, path, flags)) return fault();
  int (*real)(const char *, int, ...) = dlsym(RTLD_NEXT, "open64");
  return real(path, flags, mode);
}
int openat(int dirfd, const char *path, int flags, ...) {
  MODE_ARG(flags);
  if (hit(dirfd, path, flags)) return fault();
  int (*real)(int, const char *, int, ...) = dlsym(RTLD_NEXT, "openat");
  return real(dirfd, path, flags, mode);
}
int openat64(int dirfd, const char *path, int flags, ...) {
  MODE_ARG(flags);
  if (hit(dirfd, path, flags)) return fault();
  int (*real)(int, const char *, int, ...) = dlsym(RTLD_NEXT, "openat64");
  return real(dirfd, path, flags, mode);
}

__attribute__((destructor)) static void report(void) {
  const char *file = getenv("FERRY_FAULT_COUNT");
  if (!file) return;
  FILE *f = fopen(file, "w");
  if (!f) return;
  fprintf(f, "%ld\n", seen);
  fclose(f);
}
