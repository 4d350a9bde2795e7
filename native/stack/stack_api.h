/* The C interface between the heartbeat core (a Node-API addon, one binary
 * for every Node) and the stack capture addon (pulse_stack, built once per
 * Node ABI against V8's own API). The core never includes V8 headers: it gets
 * a pulse_stack_api* and a context from attach() on the JS side, as two
 * BigInts, and calls through the pointers below from its heartbeat thread.
 *
 * Use by the core: on the environment's JS thread, attach() returns [api, ctx]
 * (BigInt addresses); check api->version; call api->capture(ctx, ...) from the
 * heartbeat thread only (never from the JS thread: it would wait for itself);
 * call api->release(ctx) exactly once, after that thread has been joined. Both
 * stay callable after the environment is gone (capture then returns
 * PULSE_STACK_GONE). A frame with function "" is what DESIGN.md shows as
 * "<anonymous>".
 *
 * Layout rule: members may be added at the end of these structs, never
 * moved, removed or retyped; PULSE_STACK_API_VERSION changes if one is. */
#pragma once
#include <stdint.h>
#define PULSE_STACK_API_VERSION 2
#define PULSE_STACK_MAX_FRAMES 32
typedef struct pulse_stack_frame {
  char function[256];  /* UTF-8, NUL-terminated, cut to fit; "" when V8 has no name */
  char file[1024];     /* script name / URL, UTF-8; "" when none */
  int32_t line;        /* 1-based as V8 reports; 0 unknown */
  int32_t column;      /* 1-based; 0 unknown */
} pulse_stack_frame;
enum {
  PULSE_STACK_OK = 0,       /* frames filled (count may be 0) */
  PULSE_STACK_TIMEOUT = 1,  /* the interrupt did not run within timeout: thread outside JavaScript */
  PULSE_STACK_GONE = 2      /* the environment is being torn down: no request made */
};
typedef struct pulse_stack_api {
  uint32_t version;  /* PULSE_STACK_API_VERSION */
  /* Any thread except the environment's own. Asks the environment's JS thread for its current stack
     through an interrupt and waits at most timeout_ms. Writes up to max frames (innermost first) and
     *count; *interrupt_ns = time the callback spent on the stuck thread. Returns a code above.
     Captures on one ctx from several threads are served one at a time; each still waits at most
     timeout_ms in all. After PULSE_STACK_TIMEOUT the interrupt stays queued (V8 cannot withdraw it);
     when it runs late its sample is discarded, and the next capture on this ctx waits for that
     same interrupt instead of queueing another. */
  int (*capture)(void* ctx, pulse_stack_frame* frames, int32_t max, int32_t timeout_ms,
                 int32_t* count, int64_t* interrupt_ns);
  /* Any thread, once per ctx: drops the caller's reference. Safe after the environment is gone.
     No capture on this ctx may be running or start after it. */
  void (*release)(void* ctx);
  /* Version 2 on. Any thread except the environment's own. The stack an interrupt read when it ran
     after its capture had given up (PULSE_STACK_TIMEOUT): taken as the thread came back to
     JavaScript from the native call or system call that kept it out, so it names the JavaScript
     that made that call. Hands it over once: PULSE_STACK_OK with up to max frames, *count and
     *ran_ns (CLOCK_MONOTONIC time it was read), or PULSE_STACK_TIMEOUT when there is none. */
  int (*take_late)(void* ctx, pulse_stack_frame* frames, int32_t max, int32_t* count, int64_t* ran_ns);
} pulse_stack_api;
