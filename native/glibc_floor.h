// Keeps the binary loadable on glibc 2.28 (Debian 10, RHEL 8) when it is
// built on a newer glibc. In 2.32 and 2.34 the pthread functions moved from
// libpthread into libc and got new symbol versions; a plain link binds to
// those, and the dynamic loader of an older glibc then refuses the binary.
// Every glibc since still exports the original versions, so each call below
// is bound to its original version instead. Same functions, same ABI.
//
// Only glibc on the two prebuilt architectures needs this: musl has no symbol
// versions (it does not define __GLIBC__), and other architectures are built
// from source against the glibc they run on. test/prebuild.test.js checks the
// result with objdump -T; a new pthread call that needs pinning fails there.
#pragma once

#include <features.h>  // defines __GLIBC__ on glibc only

#if defined(__GLIBC__)
#if defined(__x86_64__)
#define PULSE_GLIBC_BASE "GLIBC_2.2.5"
#define PULSE_GLIBC_SETCLOCK "GLIBC_2.3.3"
#elif defined(__aarch64__)
#define PULSE_GLIBC_BASE "GLIBC_2.17"
#define PULSE_GLIBC_SETCLOCK "GLIBC_2.17"
#endif
#endif

#if defined(PULSE_GLIBC_BASE)
#define PULSE_PIN(name, version) __asm__(".symver " #name "," #name "@" version)
PULSE_PIN(pthread_create, PULSE_GLIBC_BASE);             // 2.34
PULSE_PIN(pthread_join, PULSE_GLIBC_BASE);               // 2.34
PULSE_PIN(pthread_attr_setstacksize, PULSE_GLIBC_BASE);  // 2.34
PULSE_PIN(pthread_sigmask, PULSE_GLIBC_BASE);            // 2.32
PULSE_PIN(pthread_condattr_setclock, PULSE_GLIBC_SETCLOCK);  // 2.34
PULSE_PIN(pthread_getattr_np, PULSE_GLIBC_BASE);         // 2.32 (nativeStack)
PULSE_PIN(pthread_attr_getstack, PULSE_GLIBC_BASE);      // 2.34 (nativeStack)
#undef PULSE_PIN
#endif
