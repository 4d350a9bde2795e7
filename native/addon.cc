// Node-API glue: a JS handle per heartbeat, and the environment cleanup hook
// that stops and joins its thread when the environment (a worker) goes away.
#include <napi.h>

#include <cmath>
#include <memory>

#include "endpoint.h"
#include "heartbeat.h"
#include "server.h"

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
                        InstanceMethod<&PulseHandle::LastStall>("lastStall"),
                        InstanceMethod<&PulseHandle::Ready>("ready"),
                        InstanceMethod<&PulseHandle::Endpoint>("endpoint"),
                        InstanceMethod<&PulseHandle::Metrics>("metrics"),
                        InstanceMethod<&PulseHandle::ListenAddress>("listenAddress")});
  }

  // new PulseHandle(path, intervalSec, maxStallSec, staticFields, removeOnStop,
  //                 logStalls, syscallNames, fdFirstSyscalls, stackUnavailable,
  //                 stackApi?, stackCtx?, exitOnStallSec, notifySocket,
  //                 watchdogUsec, ownFiles, nativeStack)
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
    config.syscalls = pulse::AcquireSyscallTable(info[6].As<Napi::String>().Utf8Value(),
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
    // exitOnStall (0 = off); systemd's socket ("" = off) and watchdog.
    if (info.Length() > 13) {
      config.exit_on_stall_ns =
          static_cast<int64_t>(std::llround(info[11].As<Napi::Number>().DoubleValue() * 1e9));
      config.notify_socket = info[12].As<Napi::String>().Utf8Value();
      config.watchdog_ns =
          static_cast<int64_t>(std::llround(info[13].As<Napi::Number>().DoubleValue() * 1e3));
    }
    // The package's own files (its dist/ folder): frames there are marked.
    if (info.Length() > 14 && info[14].IsString()) config.own_files = info[14].As<Napi::String>().Utf8Value();
    // Read here, on the pulse's JS thread: the thread nativeStack samples.
    config.native_stack = pulse::NativeStackPrepare(info.Length() > 15 && info[15].ToBoolean().Value());
    // Made at start(), once endpoint() may have added the bound address to
    // the record's fields.
    pending_ = std::make_unique<pulse::Config>(std::move(config));
  }

  ~PulseHandle() override {
    StopNow(false);
    // Never started: the stack context handed over is released here.
    if (pending_ != nullptr && pending_->stack_api != nullptr) pending_->stack_api->release(pending_->stack_ctx);
  }

 private:
  static void OnEnvCleanup(void* arg) {
    auto* self = static_cast<PulseHandle*>(arg);
    self->hook_env_ = nullptr;  // the hook is consumed by running
    // The environment ends (process exit, worker terminated) without stop():
    // the file is left as stop() would leave it.
    self->Release(self->remove_on_cleanup_);
  }

  void StopNow(bool remove) {
    if (hook_env_ != nullptr) {
      napi_remove_env_cleanup_hook(hook_env_, OnEnvCleanup, this);
      hook_env_ = nullptr;
    }
    Release(remove);
  }

  // Stops the endpoint (it reads the heartbeat), then the heartbeat, and frees
  // everything they own now, not when the garbage collector gets to this
  // wrapper: what status() reads afterwards is kept in final_*.
  void Release(bool remove) {
    if (server_ != nullptr) server_->Stop();
    if (heartbeat_ == nullptr) return;
    heartbeat_->Stop(remove);
    final_ = heartbeat_->Read();
    final_last_stall_ = heartbeat_->LastStallJson();
    server_.reset();
    endpoint_.reset();
    heartbeat_.reset();
  }

  // endpoint(version, runtime, intervalSec, maxStallSec, host|null, port):
  // before start(). With a host ("" = every interface) it binds and listens
  // now, so a bad address fails before anything starts. Returns null, or
  // {errno, op} for the call that failed.
  Napi::Value Endpoint(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    endpoint_config_.file = pending_->path;
    endpoint_config_.version = info[0].As<Napi::String>().Utf8Value();
    endpoint_config_.strategy = "native";
    endpoint_config_.runtime = info[1].As<Napi::String>().Utf8Value();
    endpoint_config_.interval_seconds = info[2].As<Napi::Number>().DoubleValue();
    endpoint_config_.max_stall_seconds = info[3].As<Napi::Number>().DoubleValue();
    if (!info[4].IsString()) return env.Null();
    server_ = std::make_unique<pulse::Server>();
    const char* op = "";
    const int err = server_->Bind(info[4].As<Napi::String>().Utf8Value(), info[5].As<Napi::Number>().Int32Value(), &op);
    if (err != 0) {
      server_.reset();
      Napi::Object error = Napi::Object::New(env);
      error.Set("errno", err);
      error.Set("op", op);
      return error;
    }
    listen_address_ = server_->address();
    pending_->static_fields += ",\"listen\":\"" + listen_address_ + "\"";
    return env.Null();
  }

  Napi::Value Metrics(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), endpoint_ != nullptr ? endpoint_->Metrics() : std::string());
  }

  Napi::Value ListenAddress(const Napi::CallbackInfo& info) {
    if (listen_address_.empty()) return info.Env().Null();
    return Napi::String::New(info.Env(), listen_address_);
  }

  // Returns null, or {errno, op} describing why the first beat failed.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    heartbeat_ = std::make_unique<pulse::Heartbeat>(std::move(*pending_));
    pending_.reset();
    endpoint_ = std::make_unique<pulse::PulseEndpoint>(heartbeat_.get(), endpoint_config_);
    pulse::FileResult result = heartbeat_->Start();
    if (!result.ok()) {
      Release(false);  // never started: nothing to write, all to free
      Napi::Object error = Napi::Object::New(env);
      error.Set("errno", result.err);
      error.Set("op", static_cast<int>(result.op));
      return error;
    }
    if (server_ != nullptr) {
      server_->set_responder(endpoint_.get());
      const int err = server_->Start();
      if (err != 0) {
        Release(false);
        Napi::Object error = Napi::Object::New(env);
        error.Set("errno", err);
        error.Set("op", 0);
        return error;
      }
    }
    if (napi_add_env_cleanup_hook(env, OnEnvCleanup, this) == napi_ok) {
      hook_env_ = env;
    }
    return env.Null();
  }

  // After stop(), the calls below do nothing (the JS side stops calling them).
  void Answer(const Napi::CallbackInfo&) {
    if (heartbeat_) heartbeat_->Answer();
  }

  // veto(message, fields): a failing health check; veto("", "") lifts it.
  void Veto(const Napi::CallbackInfo& info) {
    if (!heartbeat_) return;
    heartbeat_->SetVeto(info[0].As<Napi::String>().Utf8Value(),
                        info[1].As<Napi::String>().Utf8Value());
  }

  void Stop(const Napi::CallbackInfo& info) {
    StopNow(info.Length() > 0 && info[0].ToBoolean().Value());
  }

  // track(label) -> id; untrack(id). Ids are below 2^53.
  Napi::Value Track(const Napi::CallbackInfo& info) {
    uint64_t id = heartbeat_ ? heartbeat_->TrackBegin(info[0].As<Napi::String>().Utf8Value()) : 0;
    return Napi::Number::New(info.Env(), static_cast<double>(id));
  }

  void Untrack(const Napi::CallbackInfo& info) {
    if (!heartbeat_) return;
    heartbeat_->TrackEnd(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
  }

  // expectStall(seconds, reason)
  void ExpectStall(const Napi::CallbackInfo& info) {
    if (!heartbeat_) return;
    heartbeat_->ExpectStall(
        static_cast<int64_t>(std::llround(info[0].As<Napi::Number>().DoubleValue() * 1e9)),
        info[1].As<Napi::String>().Utf8Value());
  }

  // The diagnosis as JSON text ("" when none): parsed by the caller.
  Napi::Value Stall(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), heartbeat_ ? heartbeat_->StallJson() : std::string());
  }

  Napi::Value LastStall(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), heartbeat_ ? heartbeat_->LastStallJson() : final_last_stall_);
  }

  // READY=1 to systemd: 0 or the send's errno.
  Napi::Value Ready(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), heartbeat_ ? heartbeat_->Ready() : 0);
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    pulse::Snapshot s = heartbeat_ ? heartbeat_->Read() : final_;
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
    out.Set("notifySent", static_cast<double>(s.notify_sent));
    out.Set("notifyErrno", s.notify_errno);
    out.Set("notifyErrorMs", NsToMs(s.notify_error_wall_ns));
    return out;
  }

  std::unique_ptr<pulse::Config> pending_;  // until start()
  std::unique_ptr<pulse::Heartbeat> heartbeat_;  // from start() until stop()
  pulse::Snapshot final_;            // the counters at stop()
  std::string final_last_stall_;     // lastStall at stop()
  pulse::EndpointConfig endpoint_config_;
  std::unique_ptr<pulse::PulseEndpoint> endpoint_;  // from start() until stop()
  std::unique_ptr<pulse::Server> server_;  // with listen: bound by endpoint(), started by start()
  std::string listen_address_;  // the bound address, kept after stop()
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
