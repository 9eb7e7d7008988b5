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

static int is_regular(int fd) {
  struct stat st;
  return fd > 2 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

ssize_t write(int fd, const void* buf, size_t n) {
  static ssize_t (*real)(int, const void*, size_t) = NULL;
  if (!real) real = (ssize_t(*)(int, const void*, size_t))dlsym(RTLD_NEXT, "write");
  if (n > 0 && is_regular(fd) && output_event()) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, buf, n);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  static ssize_t (*real)(int, const void*, size_t, off_t) = NULL;
  if (!real) real = (ssize_t(*)(int, const void*, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
  if (n > 0 && is_regular(fd) && output_event()) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) {
  static ssize_t (*real)(int, const void*, size_t, off_t) = NULL;
  if (!real) real = (ssize_t(*)(int, const void*, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
  if (n > 0 && is_regular(fd) && output_event()) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, buf, n, off);
}

int rename(const char* from, const char* to) {
  static int (*real)(const char*, const char*) = NULL;
  if (!real) real = (int (*)(const char*, const char*))dlsym(RTLD_NEXT, "rename");
  if (output_event()) {
    errno = ENOSPC;
    return -1;
  }
  return real(from, to);
}
