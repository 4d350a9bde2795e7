/*
 * Preloaded after libtsan for the ThreadSanitizer run (test/sanitize/run.sh).
 *
 * Node's libuv closes file descriptors with syscall(SYS_close, fd) on Linux
 * rather than close(), so ThreadSanitizer, which tracks descriptors through
 * its close() interceptor, never sees them closed. When the heartbeat thread
 * then opens its temporary record file and gets the same descriptor number,
 * TSan reports a "race" between that open and whatever libuv created the
 * number for (an epoll instance, a pipe). libuv does the same as this shim
 * itself when it is built with TSan: tell the runtime about the close.
 * Nothing is suppressed; every other syscall passes through untouched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <sys/syscall.h>

void __sanitizer_syscall_pre_impl_close(long fd);
void __sanitizer_syscall_post_impl_close(long res, long fd);

typedef long (*syscall_fn)(long, ...);

long syscall(long number, ...) {
  static syscall_fn real;
  if (real == 0) real = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
  va_list ap;
  va_start(ap, number);
  long a0 = va_arg(ap, long), a1 = va_arg(ap, long), a2 = va_arg(ap, long);
  long a3 = va_arg(ap, long), a4 = va_arg(ap, long), a5 = va_arg(ap, long);
  va_end(ap);
  if (number != SYS_close) return real(number, a0, a1, a2, a3, a4, a5);
  __sanitizer_syscall_pre_impl_close(a0);
  long result = real(number, a0);
  __sanitizer_syscall_post_impl_close(result, a0);
  return result;
}
