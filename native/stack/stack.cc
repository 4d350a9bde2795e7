// pulse_stack: reads the JavaScript stack of an environment's JS thread
// while that thread is stuck, for the heartbeat core (stack_api.h).
//
// Node-API cannot reach a thread that runs JavaScript and never yields, so
// this addon is built against V8 and Node directly, once per Node ABI. A
// capture asks the stuck thread, through node::RequestInterrupt, to copy
// v8::StackTrace::CurrentStackTrace into plain C buffers; V8 runs that
// callback at the thread's next interrupt check (a function entry or a loop
// back-edge), so it works while JavaScript spins and cannot work while the
// thread is blocked outside JavaScript (a system call, native code). The
// capturing thread waits for the answer at most timeout_ms.
//
// Lifetimes. One EnvState per environment that loaded the addon; its cleanup
// hook marks it dead before the environment goes away, and no interrupt is
// requested after that. One Ctx per attach(); it is reference-counted by its
// caller and by its pending interrupt, so an interrupt that runs after the
// caller gave up (or released) still finds its Ctx. Node drains pending
// interrupts in FreeEnvironment, so every requested callback runs exactly
// once and drops its reference. The shared object is linked with
// -z nodelete: Node dlcloses the addons of a worker environment when it ends,
// and a heartbeat thread may still call capture/release after that.
//
// Plain C memory and pthreads, no C++ library calls: the binary depends on
// nothing newer than the glibc floor (native/glibc_floor.h) and Node's exports.
#include "../glibc_floor.h"  // first: pins glibc symbol versions

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <node.h>
#include <node_version.h>
#include <v8.h>

#include "stack_api.h"

#ifndef PULSE_STACK_DIGEST
#define PULSE_STACK_DIGEST unknown
#endif
#define PULSE_STR2(x) #x
#define PULSE_STR(x) PULSE_STR2(x)

namespace {

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// One per environment (main thread or worker) that loaded the addon.
struct EnvState {
  pthread_mutex_t mu;      // guards every field below
  int refs;                // one for the cleanup hook, one per live Ctx
  bool dead;               // the cleanup hook ran: env and isolate are gone
  node::Environment* env;  // null once dead
  v8::Isolate* isolate;    // null once dead
};

struct Ctx {
  EnvState* es;        // counted reference, set at attach and never changed
  pthread_mutex_t mu;  // guards every field below except scratch
  pthread_cond_t cv;   // CLOCK_MONOTONIC; signalled when an answer lands or a capture ends
  int refs;            // the caller's (until release) + one while an interrupt is pending
  bool pending;        // an interrupt was requested and its callback has not run yet
  bool busy;           // a capture is in progress (captures on a ctx run one at a time)
  bool waiting;        // the capture in progress still wants the answer
  bool answered;       // the callback answered the capture in progress
  int answer_code;     // PULSE_STACK_OK, or PULSE_STACK_GONE if the env died first
  int32_t count;       // frames in scratch for the answer
  int64_t interrupt_ns;  // time the callback spent on the JS thread
  uint64_t requested;  // interrupts requested (for tests)
  uint64_t ran;        // callbacks run (for tests)
  uint64_t discarded;  // callbacks that ran with nobody waiting (for tests)
  bool late_ready;     // late[] holds a sample nobody waited for, not yet taken
  int32_t late_count;  // frames in late[]
  int64_t late_ran_ns;  // CLOCK_MONOTONIC time that sample was read
  // Written by the callback without the lock, before it takes mu to publish
  // `answered`; read by the capture under mu once `answered` is set. Only one
  // interrupt is ever outstanding per ctx and `busy` keeps the next capture
  // (hence the next interrupt) from starting before the reader is done, so
  // reads and writes never overlap.
  pulse_stack_frame scratch[PULSE_STACK_MAX_FRAMES];
  // The late sample, kept for take_late(); guarded by mu.
  pulse_stack_frame late[PULSE_STACK_MAX_FRAMES];
};

void EnvUnref(EnvState* es) {
  pthread_mutex_lock(&es->mu);
  bool last = --es->refs == 0;
  pthread_mutex_unlock(&es->mu);
  if (!last) return;
  pthread_mutex_destroy(&es->mu);
  free(es);
}

// Runs on the environment's thread while it is torn down, before the
// Environment and its isolate are freed.
void OnEnvCleanup(void* arg) {
  EnvState* es = static_cast<EnvState*>(arg);
  pthread_mutex_lock(&es->mu);
  es->dead = true;
  es->env = nullptr;
  es->isolate = nullptr;
  pthread_mutex_unlock(&es->mu);
  EnvUnref(es);
}

void CtxUnref(Ctx* c) {
  pthread_mutex_lock(&c->mu);
  bool last = --c->refs == 0;
  pthread_mutex_unlock(&c->mu);
  if (!last) return;
  EnvState* es = c->es;
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
  free(c);
  EnvUnref(es);
}

// Copies a V8 string into buf as NUL-terminated UTF-8, cut to fit.
void CopyUtf8(v8::Isolate* isolate, v8::Local<v8::String> s, char* buf, size_t cap) {
  buf[0] = '\0';
  if (s.IsEmpty()) return;
#if V8_MAJOR_VERSION >= 13
  s->WriteUtf8V2(isolate, buf, cap,
                 v8::String::WriteFlags::kNullTerminate | v8::String::WriteFlags::kReplaceInvalidUtf8);
#else
  int n = s->WriteUtf8(isolate, buf, (int)cap - 1, nullptr,
                       v8::String::NO_NULL_TERMINATION | v8::String::REPLACE_INVALID_UTF8);
  buf[n < 0 ? 0 : n] = '\0';
#endif
}

// Reads the current stack into frames. Calls no JavaScript.
int32_t Sample(v8::Isolate* isolate, pulse_stack_frame* frames) {
  v8::HandleScope scope(isolate);
  v8::Local<v8::StackTrace> trace =
      v8::StackTrace::CurrentStackTrace(isolate, PULSE_STACK_MAX_FRAMES, v8::StackTrace::kDetailed);
  int32_t n = trace->GetFrameCount();
  if (n > PULSE_STACK_MAX_FRAMES) n = PULSE_STACK_MAX_FRAMES;
  for (int32_t i = 0; i < n; i++) {
    v8::Local<v8::StackFrame> f = trace->GetFrame(isolate, (uint32_t)i);
    pulse_stack_frame* out = &frames[i];
    CopyUtf8(isolate, f->GetFunctionName(), out->function, sizeof out->function);
    CopyUtf8(isolate, f->GetScriptNameOrSourceURL(), out->file, sizeof out->file);
    int line = f->GetLineNumber(), column = f->GetColumn();
    out->line = line > 0 ? line : 0;
    out->column = column > 0 ? column : 0;
  }
  return n;
}

// The interrupt callback, on the environment's JS thread. Runs exactly once
// per request and owns one reference to the Ctx.
void OnInterrupt(void* arg) {
  Ctx* c = static_cast<Ctx*>(arg);
  int64_t start = NowNs();
  pthread_mutex_lock(&c->es->mu);
  v8::Isolate* isolate = c->es->dead ? nullptr : c->es->isolate;
  pthread_mutex_unlock(&c->es->mu);
  // Only this thread can end the environment, so isolate stays valid here.
  int32_t n = isolate != nullptr ? Sample(isolate, c->scratch) : 0;
  int64_t spent = NowNs() - start;

  pthread_mutex_lock(&c->mu);
  c->pending = false;
  c->ran++;
  if (c->waiting) {
    c->answered = true;
    c->answer_code = isolate != nullptr ? PULSE_STACK_OK : PULSE_STACK_GONE;
    c->count = n;
    c->interrupt_ns = spent;
    pthread_cond_broadcast(&c->cv);
  } else {
    // Late: its capture gave up. Kept for take_late(), never for a capture.
    c->discarded++;
    memcpy(c->late, c->scratch, (size_t)n * sizeof(pulse_stack_frame));
    c->late_count = n;
    c->late_ran_ns = start;
    c->late_ready = isolate != nullptr;
  }
  pthread_mutex_unlock(&c->mu);
  CtxUnref(c);
}

struct timespec Deadline(int32_t timeout_ms) {
  int64_t at = NowNs() + (int64_t)timeout_ms * 1000000LL;
  struct timespec ts;
  ts.tv_sec = (time_t)(at / 1000000000LL);
  ts.tv_nsec = (long)(at % 1000000000LL);
  return ts;
}

int Capture(void* ctx, pulse_stack_frame* frames, int32_t max, int32_t timeout_ms, int32_t* count,
            int64_t* interrupt_ns) {
  Ctx* c = static_cast<Ctx*>(ctx);
  *count = 0;
  *interrupt_ns = 0;
  if (max < 0) max = 0;
  if (max > PULSE_STACK_MAX_FRAMES) max = PULSE_STACK_MAX_FRAMES;
  if (timeout_ms < 0) timeout_ms = 0;
  struct timespec deadline = Deadline(timeout_ms);

  pthread_mutex_lock(&c->mu);
  while (c->busy) {
    if (pthread_cond_timedwait(&c->cv, &c->mu, &deadline) == ETIMEDOUT && c->busy) {
      pthread_mutex_unlock(&c->mu);
      return PULSE_STACK_TIMEOUT;
    }
  }
  c->busy = true;
  c->waiting = true;
  c->answered = false;

  // Lock order: Ctx::mu, then EnvState::mu (nothing takes them the other way).
  pthread_mutex_lock(&c->es->mu);
  bool dead = c->es->dead;
  if (!dead && !c->pending) {
    // Held under EnvState::mu, so the cleanup hook cannot end the environment
    // during the call; RequestInterrupt only queues and never blocks.
    c->pending = true;
    c->refs++;  // the callback's reference
    c->requested++;
    node::RequestInterrupt(c->es->env, OnInterrupt, c);
  }
  pthread_mutex_unlock(&c->es->mu);

  int code = PULSE_STACK_GONE;
  if (!dead) {
    while (!c->answered) {
      if (pthread_cond_timedwait(&c->cv, &c->mu, &deadline) == ETIMEDOUT) break;
    }
    code = PULSE_STACK_TIMEOUT;
    if (c->answered) {
      code = c->answer_code;
      int32_t n = c->count < max ? c->count : max;
      memcpy(frames, c->scratch, (size_t)n * sizeof(pulse_stack_frame));
      *count = n;
      *interrupt_ns = c->interrupt_ns;
    }
  }
  c->busy = false;
  c->waiting = false;
  c->answered = false;
  pthread_cond_broadcast(&c->cv);  // a capture queued behind this one may start
  pthread_mutex_unlock(&c->mu);
  return code;
}

void Release(void* ctx) { CtxUnref(static_cast<Ctx*>(ctx)); }

int TakeLate(void* ctx, pulse_stack_frame* frames, int32_t max, int32_t* count, int64_t* ran_ns) {
  Ctx* c = static_cast<Ctx*>(ctx);
  *count = 0;
  *ran_ns = 0;
  if (max < 0) max = 0;
  if (max > PULSE_STACK_MAX_FRAMES) max = PULSE_STACK_MAX_FRAMES;
  pthread_mutex_lock(&c->mu);
  int code = PULSE_STACK_TIMEOUT;
  if (c->late_ready) {
    int32_t n = c->late_count < max ? c->late_count : max;
    memcpy(frames, c->late, (size_t)n * sizeof(pulse_stack_frame));
    *count = n;
    *ran_ns = c->late_ran_ns;
    c->late_ready = false;
    code = PULSE_STACK_OK;
  }
  pthread_mutex_unlock(&c->mu);
  return code;
}

const pulse_stack_api kApi = {PULSE_STACK_API_VERSION, Capture, Release, TakeLate};

// ---- JavaScript side -------------------------------------------------------

v8::Local<v8::String> Str(v8::Isolate* isolate, const char* s) {
  return v8::String::NewFromUtf8(isolate, s).ToLocalChecked();
}

void Set(v8::Isolate* isolate, v8::Local<v8::Context> context, v8::Local<v8::Object> obj,
         const char* key, v8::Local<v8::Value> value) {
  obj->Set(context, Str(isolate, key), value).Check();
}

// attach(): [api, ctx] as BigInt addresses; ctx is bound to this environment.
void Attach(const v8::FunctionCallbackInfo<v8::Value>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  // The function's data holds the EnvState address (a BigInt: v8::External
  // changed its signature across these V8 versions).
  EnvState* es = reinterpret_cast<EnvState*>((uintptr_t)info.Data().As<v8::BigInt>()->Uint64Value());
  Ctx* c = static_cast<Ctx*>(calloc(1, sizeof(Ctx)));
  if (c == nullptr) {
    isolate->ThrowException(v8::Exception::Error(Str(isolate, "pulse_stack: out of memory")));
    return;
  }
  pthread_mutex_init(&c->mu, nullptr);
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cv, &attr);
  pthread_condattr_destroy(&attr);
  c->refs = 1;  // the caller's, dropped by release()
  pthread_mutex_lock(&es->mu);
  es->refs++;  // this Ctx's
  pthread_mutex_unlock(&es->mu);
  c->es = es;
  v8::Local<v8::Value> pair[2] = {
      v8::BigInt::NewFromUnsigned(isolate, (uint64_t)(uintptr_t)&kApi),
      v8::BigInt::NewFromUnsigned(isolate, (uint64_t)(uintptr_t)c)};
  info.GetReturnValue().Set(v8::Array::New(isolate, pair, 2));
}

}  // namespace

#include "stack_test.h"  // the `_`-prefixed test exports

NODE_MODULE_INIT(/* exports, module, context */) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  EnvState* es = static_cast<EnvState*>(calloc(1, sizeof(EnvState)));
  if (es == nullptr) return;
  pthread_mutex_init(&es->mu, nullptr);
  es->refs = 1;  // the cleanup hook's
  es->env = node::GetCurrentEnvironment(context);
  es->isolate = isolate;
  node::AddEnvironmentCleanupHook(isolate, OnEnvCleanup, es);

  v8::Local<v8::Function> attach =
      v8::Function::New(context, Attach, v8::BigInt::NewFromUnsigned(isolate, (uint64_t)(uintptr_t)es))
          .ToLocalChecked();
  Set(isolate, context, exports, "attach", attach);
  Set(isolate, context, exports, "sourceDigest", Str(isolate, PULSE_STR(PULSE_STACK_DIGEST)));
  Set(isolate, context, exports, "abi", v8::Integer::New(isolate, NODE_MODULE_VERSION));
  Set(isolate, context, exports, "apiVersion", v8::Integer::New(isolate, PULSE_STACK_API_VERSION));
  Set(isolate, context, exports, "maxFrames", v8::Integer::New(isolate, PULSE_STACK_MAX_FRAMES));
  AddTestExports(context, exports);
}
