// nativeStack: the machine stack of a thread stuck outside JavaScript, taken
// from the thread itself by a real-time signal and symbolized on the
// heartbeat thread from the modules' own symbol tables (ELF .symtab, then
// .dynsym), demangled. See native_stack.cc for what runs on the stuck thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pulse {

// The thread to be sampled, described on that thread (NativeStackPrepare):
// its id and the bounds of its own stack, the only memory the capture reads.
struct NativeStackTarget {
  bool enabled = false;   // the nativeStack option
  pid_t tid = 0;
  uintptr_t stack_lo = 0;  // lowest address of the thread's stack
  uintptr_t stack_hi = 0;  // one past its highest
  std::string unavailable;  // why no capture can be made, or empty
};

// On the thread that will be sampled (the pulse's JS thread, at start):
// reads its stack bounds and installs the signal handler once per process.
NativeStackTarget NativeStackPrepare(bool enabled);

struct NativeStack {
  std::string json;      // "[{"symbol":...,"module":...}, ...]" or "null"
  std::string top_json;  // the top 5 frames, for lastStall; "null" when none
  std::string first;     // "sqlite3VdbeExec (better_sqlite3.node)", or empty
  std::string reason;    // why there is no stack, or empty
  int64_t handler_ns = 0;  // time the stuck thread spent in the capture
};

// On the heartbeat thread: signals the target, waits at most wait_ms for its
// answer, and symbolizes what it copied. Captures are served one at a time.
NativeStack CaptureNativeStack(const NativeStackTarget& target, int64_t wait_ms);

// Tests and bench: from a thread of its own, samples `target` `count` times,
// `gap_us` apart (the capture without the symbolizing). Start returns null
// if the thread cannot start; Done is non-blocking; Join waits and frees.
struct NativeStackStress;
NativeStackStress* NativeStackStressStart(const NativeStackTarget& target, int count, int gap_us);
bool NativeStackStressDone(NativeStackStress* stress);
// The stuck thread's time in each answered capture (ns); *sent: signals sent.
std::vector<int64_t> NativeStackStressJoin(NativeStackStress* stress, int* sent);

// Captures attempted (signals sent) by this process, for tests.
uint64_t NativeStackCaptures();
// The signal the capture uses (0 when none), for tests.
int NativeStackSignal();

}  // namespace pulse
