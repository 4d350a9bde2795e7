// Node-API glue: a JS handle per heartbeat, and the environment cleanup hook
// that stops and joins its thread when the environment (a worker) goes away.
#include <napi.h>

#include <cmath>
#include <memory>

#include "heartbeat.h"

#define PULSE_STR2(x) #x
#define PULSE_STR(x) PULSE_STR2(x)

namespace {

double NsToMs(int64_t ns) { return static_cast<double>(ns) / 1e6; }

class PulseHandle : public Napi::ObjectWrap<PulseHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PulseHandle",
                       {InstanceMethod<&PulseHandle::Start>("start"),
                        InstanceMethod<&PulseHandle::Answer>("answer"),
                        InstanceMethod<&PulseHandle::Veto>("veto"),
                        InstanceMethod<&PulseHandle::Stop>("stop"),
                        InstanceMethod<&PulseHandle::Stats>("stats"),
                        InstanceMethod<&PulseHandle::Track>("track"),
                        InstanceMethod<&PulseHandle::Untrack>("untrack"),
                        InstanceMethod<&PulseHandle::ExpectStall>("expectStall"),
                        InstanceMethod<&PulseHandle::Stall>("stall"),
                        InstanceMethod<&PulseHandle::LastStall>("lastStall")});
  }

  // new PulseHandle(path, intervalSec, maxStallSec, staticFields, removeOnStop,
  //                 logStalls, syscallNames, fdFirstSyscalls, stackUnavailable,
  //                 stackApi?, stackCtx?, nativeStack?)
  // Arguments are validated by the TypeScript caller.
  explicit PulseHandle(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<PulseHandle>(info) {
    pulse::Config config;
    config.path = info[0].As<Napi::String>().Utf8Value();
    config.interval_ns =
        static_cast<int64_t>(std::llround(info[1].As<Napi::Number>().DoubleValue() * 1e9));
    double max_stall = info[2].As<Napi::Number>().DoubleValue();
    config.max_stall_ns =
        std::isfinite(max_stall) ? static_cast<int64_t>(std::llround(max_stall * 1e9)) : -1;
    config.static_fields = info[3].As<Napi::String>().Utf8Value();
    remove_on_cleanup_ = info[4].ToBoolean().Value();
    config.log_stalls = info[5].As<Napi::Number>().Int32Value();
    config.syscalls = pulse::ParseSyscallTable(info[6].As<Napi::String>().Utf8Value(),
                                               info[7].As<Napi::String>().Utf8Value());
    config.stack_unavailable = info[8].As<Napi::String>().Utf8Value();
    // [api, ctx] from the stack piece's attach(), as BigInt addresses; the
    // heartbeat owns the context from here on (it releases it once).
    if (info.Length() > 10 && info[9].IsBigInt() && info[10].IsBigInt()) {
      bool lossless = true;
      auto* api = reinterpret_cast<const pulse_stack_api*>(
          static_cast<uintptr_t>(info[9].As<Napi::BigInt>().Uint64Value(&lossless)));
      void* ctx = reinterpret_cast<void*>(
          static_cast<uintptr_t>(info[10].As<Napi::BigInt>().Uint64Value(&lossless)));
      // Version 1 lacks take_late (the stack after the fact): still used.
      if (api != nullptr && api->version >= 1 && api->version <= PULSE_STACK_API_VERSION) {
        config.stack_api = api;
        config.stack_ctx = ctx;
      } else if (api != nullptr) {
        api->release(ctx);  // a piece from another release: not used
        config.stack_unavailable = "the stack support binary does not match this release";
      }
    }
    // Read here, on the pulse's JS thread: the thread nativeStack samples.
    config.native_stack = pulse::NativeStackPrepare(info.Length() > 11 && info[11].ToBoolean().Value());
    heartbeat_ = std::make_unique<pulse::Heartbeat>(std::move(config));
  }

  ~PulseHandle() override { StopNow(false); }

 private:
  static void OnEnvCleanup(void* arg) {
    auto* self = static_cast<PulseHandle*>(arg);
    self->hook_env_ = nullptr;  // the hook is consumed by running
    // The environment ends (process exit, worker terminated) without stop():
    // the file is left as stop() would leave it.
    self->heartbeat_->Stop(self->remove_on_cleanup_);
  }

  void StopNow(bool remove) {
    if (hook_env_ != nullptr) {
      napi_remove_env_cleanup_hook(hook_env_, OnEnvCleanup, this);
      hook_env_ = nullptr;
    }
    heartbeat_->Stop(remove);
  }

  // Returns null, or {errno, op} describing why the first beat failed.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    pulse::FileResult result = heartbeat_->Start();
    if (!result.ok()) {
      Napi::Object error = Napi::Object::New(env);
      error.Set("errno", result.err);
      error.Set("op", static_cast<int>(result.op));
      return error;
    }
    if (napi_add_env_cleanup_hook(env, OnEnvCleanup, this) == napi_ok) {
      hook_env_ = env;
    }
    return env.Null();
  }

  void Answer(const Napi::CallbackInfo&) { heartbeat_->Answer(); }

  // veto(message, fields): a failing health check; veto("", "") lifts it.
  void Veto(const Napi::CallbackInfo& info) {
    heartbeat_->SetVeto(info[0].As<Napi::String>().Utf8Value(),
                        info[1].As<Napi::String>().Utf8Value());
  }

  void Stop(const Napi::CallbackInfo& info) {
    StopNow(info.Length() > 0 && info[0].ToBoolean().Value());
  }

  // track(label) -> id; untrack(id). Ids are below 2^53.
  Napi::Value Track(const Napi::CallbackInfo& info) {
    uint64_t id = heartbeat_->TrackBegin(info[0].As<Napi::String>().Utf8Value());
    return Napi::Number::New(info.Env(), static_cast<double>(id));
  }

  void Untrack(const Napi::CallbackInfo& info) {
    heartbeat_->TrackEnd(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
  }

  // expectStall(seconds, reason)
  void ExpectStall(const Napi::CallbackInfo& info) {
    heartbeat_->ExpectStall(
        static_cast<int64_t>(std::llround(info[0].As<Napi::Number>().DoubleValue() * 1e9)),
        info[1].As<Napi::String>().Utf8Value());
  }

  // The diagnosis as JSON text ("" when none): parsed by the caller.
  Napi::Value Stall(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), heartbeat_->StallJson());
  }

  Napi::Value LastStall(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), heartbeat_->LastStallJson());
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    pulse::Snapshot s = heartbeat_->Read();
    Napi::Object out = Napi::Object::New(env);
    out.Set("running", s.running);
    out.Set("beats", static_cast<double>(s.beats));
    out.Set("withheld", static_cast<double>(s.withheld));
    out.Set("vetoed", static_cast<double>(s.vetoed));
    out.Set("errors", static_cast<double>(s.errors));
    out.Set("lastBeatMs", NsToMs(s.last_beat_wall_ns));
    out.Set("loopSilentMs", NsToMs(s.loop_silent_ns));
    out.Set("stalled", s.stalled);
    out.Set("errno", s.last_errno);
    out.Set("errorOp", static_cast<int>(s.last_error_op));
    out.Set("errorMs", NsToMs(s.last_error_wall_ns));
    return out;
  }

  std::unique_ptr<pulse::Heartbeat> heartbeat_;
  napi_env hook_env_ = nullptr;  // set while the cleanup hook is registered
  bool remove_on_cleanup_ = false;  // the pulse's removeOnStop
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("PulseHandle", PulseHandle::Define(env));
  exports.Set("sourceDigest", Napi::String::New(env, PULSE_STR(PULSE_SOURCE_DIGEST)));
  // For tests and bench: samples the calling thread `count` times from a
  // thread of their own while it runs a native call; one at a time.
  exports.Set("_nativeStackStress", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                const int count = info[0].As<Napi::Number>().Int32Value();
                const int gap_us = info[1].As<Napi::Number>().Int32Value();
                pulse::NativeStackTarget target = pulse::NativeStackPrepare(true);
                if (!target.unavailable.empty()) {
                  Napi::Error::New(info.Env(), target.unavailable).ThrowAsJavaScriptException();
                  return info.Env().Undefined();
                }
                pulse::NativeStackStress* stress = pulse::NativeStackStressStart(target, count, gap_us);
                if (stress == nullptr) {
                  Napi::Error::New(info.Env(), "cannot start the sampling thread").ThrowAsJavaScriptException();
                  return info.Env().Undefined();
                }
                Napi::Object handle = Napi::Object::New(info.Env());
                handle.Set("done", Napi::Function::New(info.Env(), [stress](const Napi::CallbackInfo& i) {
                             return Napi::Boolean::New(i.Env(), pulse::NativeStackStressDone(stress));
                           }));
                handle.Set("join", Napi::Function::New(info.Env(), [stress](const Napi::CallbackInfo& i) {
                             int sent = 0;
                             std::vector<int64_t> ns = pulse::NativeStackStressJoin(stress, &sent);
                             Napi::Object out = Napi::Object::New(i.Env());
                             out.Set("sent", sent);
                             Napi::Array times = Napi::Array::New(i.Env(), ns.size());
                             for (size_t k = 0; k < ns.size(); k++) times.Set(k, static_cast<double>(ns[k]));
                             out.Set("handlerNs", times);
                             return out;
                           }));
                return static_cast<Napi::Value>(handle);
              }));
  // For tests: how many nativeStack captures this process attempted.
  exports.Set("nativeStackCaptures", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                return Napi::Number::New(info.Env(), static_cast<double>(pulse::NativeStackCaptures()));
              }));
  return exports;
}

}  // namespace

NODE_API_MODULE(celery_pulse, Init)
