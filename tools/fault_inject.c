/* A preload library for fault injection (tools/fault_inject.py builds and drives it): it counts
 * the output events of a process -- each write()/pwrite() to a regular file and each rename() --
 * and, at the chosen event, either kills the process (SIGKILL, as a crash or `kill -9` would) or
 * makes that write and every later one fail with ENOSPC (a full disk).
 *
 * Environment:
 *   FAULT_AT=N          the 1-based event to act on (0 or unset: never)
 *   FAULT_MODE=kill|enospc
 *   FAULT_COUNT_FILE=F  at exit, write the number of events seen to F (for a counting run)
 *
 * Build: cc -shared -fPIC -O2 -o fault_inject.so fault_inject.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static long g_events = 0, g_at = 0;
static int g_enospc = 0, g_failing = 0;

static void report_count(void) {
  const char* f = getenv("FAULT_COUNT_FILE");
  if (!f || !*f) return;
  FILE* o = fopen(f, "w");
  if (o) {
    fprintf(o, "%ld\n", g_events);
    fclose(o);
  }
}

__attribute__((constructor)) static void setup(void) {
  const char* at = getenv("FAULT_AT");
  const char* mode = getenv("FAULT_MODE");
  g_at = at ? atol(at) : 0;
  g_enospc = mode && strcmp(mode, "enospc") == 0;
  atexit(report_count);
}

/* Counts one output event; returns 1 when this event (or, for ENOSPC, any later one) must fail. */
static int output_event(void) {
  if (g_failing) return 1;
  ++g_events;
  if (g_at > 0 && g_events == g_at) {
    if (!g_enospc) {
      report_count();
      raise(SIGKILL);
    }
    g_failing = 1;
    return 1;
  }
  return 0;
}

/* A write of n bytes to fd: counted when fd is a regular file; 1 (errno ENOSPC) when it must fail. */
static int write_fails(int fd, size_t n) {
  struct stat st;
  if (n == 0 || fd <= 2 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !output_event()) return 0;
  errno = ENOSPC;
  return 1;
}

/* `real`: the libc function ours stands in for, looked up once. */
#define REAL(fn)                        \
  static __typeof__(&fn) real = NULL;   \
  if (!real) real = (__typeof__(&fn))dlsym(RTLD_NEXT, #fn)

ssize_t write(int fd, const void* buf, size_t n) {
  REAL(write);
  return write_fails(fd, n) ? -1 : real(fd, buf, n);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  REAL(pwrite);
  return write_fails(fd, n) ? -1 : real(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) {
  REAL(pwrite64);
  return write_fails(fd, n) ? -1 : real(fd, buf, n, off);
}

int rename(const char* from, const char* to) {
  REAL(rename);
  if (output_event()) {
    errno = ENOSPC;
    return -1;
  }
  return real(from, to);
}
