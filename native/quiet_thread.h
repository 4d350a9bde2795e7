// Starting a helper thread that takes no signals: every signal is blocked in
// it, so process-directed ones (SIGTERM, SIGINT, SIGCHLD) keep going to Node's
// threads, whose handlers expect them. The heartbeat and the endpoint use it.
#pragma once

#include <pthread.h>
#include <signal.h>
#include <stddef.h>

namespace pulse {

// pthread_create with `stack_size` and all signals blocked in the new thread
// (the mask is inherited, so the caller's is set around the call and put
// back). Returns pthread_create's error, 0 on success.
inline int StartQuietThread(pthread_t* thread, size_t stack_size, void* (*main)(void*), void* arg) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stack_size);
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  const int err = pthread_create(thread, &attr, main, arg);
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  pthread_attr_destroy(&attr);
  return err;
}

}  // namespace pulse
