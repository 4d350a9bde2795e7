// A deliberately faulty addon, built with the same sanitizer flags as the real
// one: the sanitizer run loads it first and expects a report for each fault,
// so a harness that silently stopped detecting anything would fail.
#include <node_api.h>
#include <pthread.h>

#include <climits>
#include <cstdlib>
#include <cstring>

namespace {

volatile int sink;
int shared_counter;  // raced on purpose, no lock

napi_value Leak(napi_env env, napi_callback_info) {
  char* lost = static_cast<char*>(malloc(4096));
  memset(lost, 1, 4096);
  sink = lost[7];
  lost = nullptr;  // the only pointer is gone: a definite leak
  return nullptr;
}

napi_value Overflow(napi_env env, napi_callback_info) {
  char* buf = static_cast<char*>(malloc(16));
  volatile int index = 16;
  buf[index] = 1;  // one past the end
  sink = buf[0];
  free(buf);
  return nullptr;
}

napi_value UseAfterFree(napi_env env, napi_callback_info) {
  int* gone = new int[4]();
  delete[] gone;
  sink = gone[1];  // read after free: ASan's alone, UBSan cannot see it
  return nullptr;
}

napi_value Undefined(napi_env env, napi_callback_info) {
  volatile int big = INT_MAX;
  sink = big + 1;  // signed overflow
  return nullptr;
}

void* Bump(void*) {
  for (int i = 0; i < 1000; ++i) shared_counter = shared_counter + 1;
  return nullptr;
}

napi_value Race(napi_env env, napi_callback_info) {
  pthread_t a, b;
  pthread_create(&a, nullptr, Bump, nullptr);
  pthread_create(&b, nullptr, Bump, nullptr);
  pthread_join(a, nullptr);
  pthread_join(b, nullptr);
  sink = shared_counter;
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"leak", nullptr, Leak, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"overflow", nullptr, Overflow, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"useAfterFree", nullptr, UseAfterFree, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"undefined", nullptr, Undefined, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"race", nullptr, Race, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
