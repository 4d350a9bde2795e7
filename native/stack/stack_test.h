// Test-only exports of pulse_stack (names start with `_`), included by
// stack.cc. They drive the public C interface exactly as the heartbeat core
// does: from a native thread, through the pulse_stack_api pointer and the ctx
// that attach() returned.
#pragma once

namespace {

struct TestRecord {
  int code;
  int32_t count;
  int64_t interrupt_ns;  // reported by capture()
  int64_t elapsed_ns;    // the capture call, as the calling thread saw it
  pulse_stack_frame frames[PULSE_STACK_MAX_FRAMES];
};

struct TestJob {
  const pulse_stack_api* api;
  void* ctx;
  int32_t delay_ms, timeout_ms, repeat, gap_ms;
  bool detach;  // the thread releases ctx and frees the job itself
  int done;     // atomic (__atomic builtins): set by the thread after its last capture
  pthread_t thread;
  TestRecord* records;  // repeat of them; written by the thread, read after join
};

void SleepMs(int32_t ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

void* RunTestJob(void* arg) {
  TestJob* job = static_cast<TestJob*>(arg);
  SleepMs(job->delay_ms);
  for (int32_t i = 0; i < job->repeat; i++) {
    TestRecord* r = &job->records[i];
    int64_t start = NowNs();
    r->code = job->api->capture(job->ctx, r->frames, PULSE_STACK_MAX_FRAMES, job->timeout_ms, &r->count,
                                &r->interrupt_ns);
    r->elapsed_ns = NowNs() - start;
    if (job->gap_ms > 0 && i + 1 < job->repeat) SleepMs(job->gap_ms);
  }
  if (!job->detach) __atomic_store_n(&job->done, 1, __ATOMIC_RELEASE);
  if (job->detach) {
    job->api->release(job->ctx);
    free(job->records);
    free(job);
  }
  return nullptr;
}

void ThrowArg(v8::Isolate* isolate, const char* name, const char* want, v8::Local<v8::Value> got) {
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  v8::String::Utf8Value text(isolate, got);
  char msg[256];
  snprintf(msg, sizeof msg, "pulse_stack: argument %s must be %s, got %s", name, want,
           *text != nullptr ? *text : "?");
  v8::Local<v8::Object> error = v8::Exception::TypeError(Str(isolate, msg)).As<v8::Object>();
  error->Set(context, Str(isolate, "code"), Str(isolate, "ERR_PULSE_STACK_ARGUMENT")).Check();
  isolate->ThrowException(error);
}

bool ArgAddress(const v8::FunctionCallbackInfo<v8::Value>& info, int i, const char* name, void** out) {
  v8::Local<v8::Value> v = info[i];
  bool lossless = false;
  uint64_t n = v->IsBigInt() ? v.As<v8::BigInt>()->Uint64Value(&lossless) : 0;
  if (!lossless || n == 0) {
    ThrowArg(info.GetIsolate(), name, "a non-zero BigInt address", v);
    return false;
  }
  *out = reinterpret_cast<void*>((uintptr_t)n);
  return true;
}

bool ArgInt(const v8::FunctionCallbackInfo<v8::Value>& info, int i, const char* name, int32_t lo, int32_t hi,
            int32_t* out) {
  v8::Local<v8::Value> v = info[i];
  if (!v->IsInt32() || v.As<v8::Int32>()->Value() < lo || v.As<v8::Int32>()->Value() > hi) {
    char want[64];
    snprintf(want, sizeof want, "an integer in %d..%d", (int)lo, (int)hi);
    ThrowArg(info.GetIsolate(), name, want, v);
    return false;
  }
  *out = v.As<v8::Int32>()->Value();
  return true;
}

// _captureLater(api, ctx, delayMs, timeoutMs, repeat, gapMs, detach): starts
// a native thread that waits delayMs, then captures repeat times gapMs apart.
// Returns a job for _join, or 0n with detach (the thread then releases ctx).
void TestCaptureLater(const v8::FunctionCallbackInfo<v8::Value>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  void* api = nullptr;
  void* ctx = nullptr;
  int32_t delay_ms, timeout_ms, repeat, gap_ms;
  if (!ArgAddress(info, 0, "api", &api) || !ArgAddress(info, 1, "ctx", &ctx) ||
      !ArgInt(info, 2, "delayMs", 0, 600000, &delay_ms) || !ArgInt(info, 3, "timeoutMs", 0, 600000, &timeout_ms) ||
      !ArgInt(info, 4, "repeat", 1, 1000, &repeat) || !ArgInt(info, 5, "gapMs", 0, 600000, &gap_ms))
    return;
  TestJob* job = static_cast<TestJob*>(calloc(1, sizeof(TestJob)));
  job->records = static_cast<TestRecord*>(calloc((size_t)repeat, sizeof(TestRecord)));
  job->api = static_cast<const pulse_stack_api*>(api);
  job->ctx = ctx;
  job->delay_ms = delay_ms;
  job->timeout_ms = timeout_ms;
  job->repeat = repeat;
  job->gap_ms = gap_ms;
  job->detach = info[6]->IsTrue();

  // Node's threads keep receiving the process's signals, not this one.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  if (job->detach) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = pthread_create(&job->thread, &attr, RunTestJob, job);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (rc != 0) {
    free(job->records);
    free(job);
    isolate->ThrowException(v8::Exception::Error(Str(isolate, "pulse_stack: pthread_create failed")));
    return;
  }
  uint64_t handle = job->detach ? 0 : (uint64_t)(uintptr_t)job;
  info.GetReturnValue().Set(v8::BigInt::NewFromUnsigned(isolate, handle));
}

// _join(job): waits for the job's thread and returns its records:
// [{code, count, interruptNs, elapsedNs, frames: [{function, file, line, column}]}].
void TestJoin(const v8::FunctionCallbackInfo<v8::Value>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  void* p = nullptr;
  if (!ArgAddress(info, 0, "job", &p)) return;
  TestJob* job = static_cast<TestJob*>(p);
  pthread_join(job->thread, nullptr);
  v8::Local<v8::Array> out = v8::Array::New(isolate, job->repeat);
  for (int32_t i = 0; i < job->repeat; i++) {
    TestRecord* r = &job->records[i];
    v8::Local<v8::Array> frames = v8::Array::New(isolate, r->count);
    for (int32_t k = 0; k < r->count; k++) {
      v8::Local<v8::Object> f = v8::Object::New(isolate);
      Set(isolate, context, f, "function", Str(isolate, r->frames[k].function));
      Set(isolate, context, f, "file", Str(isolate, r->frames[k].file));
      Set(isolate, context, f, "line", v8::Integer::New(isolate, r->frames[k].line));
      Set(isolate, context, f, "column", v8::Integer::New(isolate, r->frames[k].column));
      frames->Set(context, (uint32_t)k, f).Check();
    }
    v8::Local<v8::Object> rec = v8::Object::New(isolate);
    Set(isolate, context, rec, "code", v8::Integer::New(isolate, r->code));
    Set(isolate, context, rec, "count", v8::Integer::New(isolate, r->count));
    Set(isolate, context, rec, "interruptNs", v8::Number::New(isolate, (double)r->interrupt_ns));
    Set(isolate, context, rec, "elapsedNs", v8::Number::New(isolate, (double)r->elapsed_ns));
    Set(isolate, context, rec, "frames", frames);
    out->Set(context, (uint32_t)i, rec).Check();
  }
  free(job->records);
  free(job);
  info.GetReturnValue().Set(out);
}

// _done(job): whether the job's thread made all its captures, so a fixture
// can stay stuck exactly as long as it needs to, however slow the machine.
void TestDone(const v8::FunctionCallbackInfo<v8::Value>& info) {
  void* p = nullptr;
  if (!ArgAddress(info, 0, "job", &p)) return;
  TestJob* job = static_cast<TestJob*>(p);
  info.GetReturnValue().Set(__atomic_load_n(&job->done, __ATOMIC_ACQUIRE) != 0);
}

// _stats(ctx): {requested, ran, discarded, pending} of a ctx.
void TestStats(const v8::FunctionCallbackInfo<v8::Value>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  void* p = nullptr;
  if (!ArgAddress(info, 0, "ctx", &p)) return;
  Ctx* c = static_cast<Ctx*>(p);
  pthread_mutex_lock(&c->mu);
  double requested = (double)c->requested, ran = (double)c->ran, discarded = (double)c->discarded;
  bool pending = c->pending;
  pthread_mutex_unlock(&c->mu);
  v8::Local<v8::Object> out = v8::Object::New(isolate);
  Set(isolate, context, out, "requested", v8::Number::New(isolate, requested));
  Set(isolate, context, out, "ran", v8::Number::New(isolate, ran));
  Set(isolate, context, out, "discarded", v8::Number::New(isolate, discarded));
  Set(isolate, context, out, "pending", v8::Boolean::New(isolate, pending));
  info.GetReturnValue().Set(out);
}

// _release(api, ctx): api->release(ctx), for tests that hold a ctx from JS.
void TestRelease(const v8::FunctionCallbackInfo<v8::Value>& info) {
  void* api = nullptr;
  void* ctx = nullptr;
  if (!ArgAddress(info, 0, "api", &api) || !ArgAddress(info, 1, "ctx", &ctx)) return;
  static_cast<const pulse_stack_api*>(api)->release(ctx);
}

void AddTestExports(v8::Local<v8::Context> context, v8::Local<v8::Object> exports) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  Set(isolate, context, exports, "_captureLater", v8::Function::New(context, TestCaptureLater).ToLocalChecked());
  Set(isolate, context, exports, "_join", v8::Function::New(context, TestJoin).ToLocalChecked());
  Set(isolate, context, exports, "_done", v8::Function::New(context, TestDone).ToLocalChecked());
  Set(isolate, context, exports, "_stats", v8::Function::New(context, TestStats).ToLocalChecked());
  Set(isolate, context, exports, "_release", v8::Function::New(context, TestRelease).ToLocalChecked());
}

}  // namespace
