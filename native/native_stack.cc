// nativeStack. The capture has two halves:
//
// On the stuck thread (OnSignal): a real-time signal interrupts it wherever
// it is (native code, or asleep in a system call: SA_RESTART resumes that
// call afterwards, the way a signal never seen would). The handler copies the
// interrupted pc, the frame-pointer chain and a window of raw stack words
// into one preallocated slot, reading only between the interrupted sp and the
// top of the thread's own stack (memory that is mapped for as long as the
// thread runs), and returns. It neither blocks, allocates, takes a lock, nor
// calls into the loader, V8 or libc beyond one raw system call (gettid).
//
// On the heartbeat thread (CaptureNativeStack): sends the signal with tgkill,
// waits a bounded time for the slot, and names each address from
// /proc/self/maps and the module's ELF symbol tables. dladdr is not used: it
// takes the loader lock, and a thread stuck inside dlopen (a hanging addon
// constructor) holds that lock: the heartbeat would hang with it.
// First, so the glibc symbol pins apply to the pthread calls below.
#include "glibc_floor.h"

#include "native_stack.h"

#include <cxxabi.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <vector>

#include "json.h"
#include "waiting_for.h"  // StatFile

#if defined(PULSE_VALGRIND)
#include <valgrind/memcheck.h>
#endif

namespace pulse {
namespace {

constexpr int kMaxFrames = 16;     // frames reported, at most
constexpr int kTopFrames = 5;      // kept in lastStall
constexpr int kWindowWords = 2048;  // raw stack words copied above sp (16 KB)

// The one capture slot of the process. Plain data, zero-initialized, never
// destroyed: a handler that runs late still finds it.
struct Slot {
  uintptr_t stack_lo, stack_hi;  // written by the capturer before arming
  uintptr_t pc, sp;
  int chain;                     // frame-pointer return addresses in chain[]
  uintptr_t chain_ra[kMaxFrames];
  int window;                    // raw words in words[]
  uintptr_t words[kWindowWords];
  int64_t handler_ns;            // time spent in the handler
};
Slot slot;

// The slot's owner. 0: idle; > 0: armed for that tid (the capturer waits);
// -1: the handler of that tid claimed it and is writing; -2: written. Only
// the capturer arms it and resets it; only the armed tid's handler claims it.
std::atomic<int> slot_state{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free atomic");
// Serializes captures (several pulses, workers) on the heartbeat threads;
// never taken on the stuck thread.
pthread_mutex_t capture_mutex = PTHREAD_MUTEX_INITIALIZER;
// Guards the one-time choice and installation of the signal.
pthread_mutex_t install_mutex = PTHREAD_MUTEX_INITIALIZER;
// The chosen signal: 0 until installed, -1 when none was free. Written under
// install_mutex, read by capturers.
std::atomic<int> capture_signal{0};
// Signals sent, for tests.
std::atomic<uint64_t> captures{0};

int64_t Now(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Not instrumented by AddressSanitizer: the words it copies belong to frames
// of other functions (some with redzones), which is the point of the copy.
__attribute__((no_sanitize_address)) void OnSignal(int, siginfo_t*, void* context) {
  // errno is saved and restored: the interrupted code may be about to read it.
  const int saved_errno = errno;
  // A raw system call: async-signal-safe, no lock, no libc state.
  const int tid = static_cast<int>(syscall(SYS_gettid));
  // Lock-free atomic compare-exchange (std::atomic<int> is always lock-free
  // here): claims the slot only if this thread is the one it was armed for;
  // a late or stray signal leaves it alone.
  int expected = tid;
  if (!slot_state.compare_exchange_strong(expected, -1, std::memory_order_acq_rel)) {
    errno = saved_errno;
    return;
  }
  // clock_gettime is async-signal-safe (POSIX) and served by the vDSO.
  const int64_t start = Now(CLOCK_MONOTONIC);
  // The context the kernel saved on this stack: plain reads of it.
  const ucontext_t* uc = static_cast<const ucontext_t*>(context);
  uintptr_t pc = 0, sp = 0, fp = 0;
#if defined(__x86_64__)
  pc = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
  sp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
  fp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RBP]);
#elif defined(__aarch64__)
  pc = static_cast<uintptr_t>(uc->uc_mcontext.pc);
  sp = static_cast<uintptr_t>(uc->uc_mcontext.sp);
  fp = static_cast<uintptr_t>(uc->uc_mcontext.regs[29]);
  const uintptr_t lr = static_cast<uintptr_t>(uc->uc_mcontext.regs[30]);
#endif
  slot.pc = pc;
  slot.sp = sp;
  slot.chain = 0;
  slot.window = 0;
  const uintptr_t lo = slot.stack_lo, hi = slot.stack_hi;
  // Everything from sp up to the top of the thread's stack is mapped while
  // the thread lives; an sp outside those bounds (another stack) reads nothing.
  if (sp >= lo && sp < hi) {
#if defined(__aarch64__)
    // A leaf function keeps its caller in the link register, not on the stack.
    slot.chain_ra[slot.chain++] = lr;
#endif
    // Frame records: [fp] = the caller's fp, [fp + 8] = the return address.
    // Each read is of a word inside [sp, hi), aligned, and the chain must
    // climb strictly: at most kMaxFrames steps, so the loop is bounded.
    uintptr_t low = sp;
    while (slot.chain < kMaxFrames && fp >= low && fp % sizeof(uintptr_t) == 0 &&
           fp + 2 * sizeof(uintptr_t) <= hi) {
      const uintptr_t* record = reinterpret_cast<const uintptr_t*>(fp);
      const uintptr_t ra = record[1];
      if (ra == 0) break;
      slot.chain_ra[slot.chain++] = ra;
      low = fp + 2 * sizeof(uintptr_t);
      fp = record[0];
    }
    // The raw words above sp, for the symbolizer to look for return
    // addresses where frame pointers are not kept: a bounded copy, in bounds.
    // Volatile reads: the compiler may not turn the loop into a memcpy call,
    // which a sanitizer would intercept and check against other frames.
    const volatile uintptr_t* words = reinterpret_cast<const volatile uintptr_t*>(sp & ~(sizeof(uintptr_t) - 1));
    uintptr_t count = (hi - reinterpret_cast<uintptr_t>(words)) / sizeof(uintptr_t);
    if (count > kWindowWords) count = kWindowWords;
    for (uintptr_t i = 0; i < count; i++) slot.words[i] = words[i];
    slot.window = static_cast<int>(count);
  }
  slot.handler_ns = Now(CLOCK_MONOTONIC) - start;
  // A lock-free store with release order: the capturer sees the slot whole.
  slot_state.store(-2, std::memory_order_release);
  errno = saved_errno;
}

// Chooses a real-time signal nobody handles and installs OnSignal for it.
// A signal with a handler already there is never taken over. The handler
// stays for the life of the process, so the addon is linked -z nodelete
// (binding.gyp): Node unloads a worker's addons when it ends, and a handler
// left pointing into unmapped code would crash on the next such signal.
// (musl never unloads a library.)
int InstallSignal() {
  pthread_mutex_lock(&install_mutex);
  int sig = capture_signal.load();
  if (sig == 0) {
    sig = -1;
    // From the top down: libraries that take one usually start at SIGRTMIN.
    // Test hook, not a setting: only this signal number is tried.
    const char* forced = getenv("CELERY_PULSE_TEST_NATIVE_SIGNAL");
    for (int n = SIGRTMAX - 2; n >= SIGRTMIN + 4; n--) {
      if (forced != nullptr && n != atoi(forced)) continue;
      struct sigaction old;
      if (sigaction(n, nullptr, &old) != 0) continue;
      const bool free = (old.sa_flags & SA_SIGINFO) == 0 && old.sa_handler == SIG_DFL;
      if (!free) continue;
      struct sigaction act;
      memset(&act, 0, sizeof act);
      act.sa_sigaction = OnSignal;
      act.sa_flags = SA_SIGINFO | SA_RESTART;
      sigemptyset(&act.sa_mask);
      if (sigaction(n, &act, nullptr) == 0) {
        sig = n;
        break;
      }
    }
    capture_signal.store(sig);
  }
  pthread_mutex_unlock(&install_mutex);
  return sig;
}

// ---- symbolizing, on the heartbeat thread ----------------------------------

struct Mapping {
  uintptr_t start, end, offset;
  bool exec;
  std::string path;
};

std::vector<Mapping> ReadMaps() {
  std::vector<Mapping> out;
  FILE* f = fopen("/proc/self/maps", "re");
  if (f == nullptr) return out;
  char line[4096];
  while (fgets(line, sizeof line, f) != nullptr) {
    unsigned long start, end, offset;
    char perms[8];
    int consumed = 0;
    if (sscanf(line, "%lx-%lx %7s %lx %*s %*s%n", &start, &end, perms, &offset, &consumed) != 4) continue;
    std::string path = line + consumed;
    while (!path.empty() && (path[0] == ' ' || path[0] == '\t')) path.erase(0, 1);
    while (!path.empty() && path.back() == '\n') path.pop_back();
    out.push_back(Mapping{start, end, offset, perms[2] == 'x', path});
  }
  fclose(f);
  return out;
}

const Mapping* Find(const std::vector<Mapping>& maps, uintptr_t addr) {
  for (const Mapping& m : maps) {
    if (addr >= m.start && addr < m.end) return &m;
  }
  return nullptr;
}

std::string Basename(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// One module's ELF file, mapped read-only while a capture is symbolized.
struct Elf {
  std::string path;
  const unsigned char* data = nullptr;
  size_t size = 0;
};

bool Open(const std::string& path, Elf* elf) {
  elf->path = path;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  FileInfo st;
  if (!StatFile(nullptr, fd, &st) || !S_ISREG(st.mode) || st.size < sizeof(Elf64_Ehdr)) {
    close(fd);
    return false;
  }
  void* p = mmap(nullptr, static_cast<size_t>(st.size), PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return false;
  elf->data = static_cast<const unsigned char*>(p);
  elf->size = static_cast<size_t>(st.size);
  return true;
}

void Close(Elf* elf) {
  if (elf->data != nullptr) munmap(const_cast<unsigned char*>(elf->data), elf->size);
  elf->data = nullptr;
}

// The function symbol covering file offset `offset` of a 64-bit ELF file:
// .symtab first (local functions too), then .dynsym; *into: how far `offset`
// lies past the function's start; *size: the function's size in bytes (0
// when the table does not say). Every table and string is bounds-checked
// against the file's size.
std::string ElfSymbol(const Elf& elf, uintptr_t offset, uintptr_t* into, uintptr_t* size) {
  const unsigned char* d = elf.data;
  if (d == nullptr || memcmp(d, ELFMAG, SELFMAG) != 0 || d[EI_CLASS] != ELFCLASS64) return std::string();
  Elf64_Ehdr eh;
  memcpy(&eh, d, sizeof eh);
  // File offset -> virtual address, through the loadable segment holding it.
  uint64_t vaddr = 0;
  bool found = false;
  for (int i = 0; i < eh.e_phnum; i++) {
    const uint64_t at = eh.e_phoff + static_cast<uint64_t>(i) * eh.e_phentsize;
    if (at + sizeof(Elf64_Phdr) > elf.size) break;
    Elf64_Phdr ph;
    memcpy(&ph, d + at, sizeof ph);
    if (ph.p_type == PT_LOAD && offset >= ph.p_offset && offset < ph.p_offset + ph.p_filesz) {
      vaddr = offset - ph.p_offset + ph.p_vaddr;
      found = true;
      break;
    }
  }
  if (!found) return std::string();
  for (const uint32_t want : {static_cast<uint32_t>(SHT_SYMTAB), static_cast<uint32_t>(SHT_DYNSYM)}) {
    for (int i = 0; i < eh.e_shnum; i++) {
      const uint64_t at = eh.e_shoff + static_cast<uint64_t>(i) * eh.e_shentsize;
      if (at + sizeof(Elf64_Shdr) > elf.size) break;
      Elf64_Shdr sh;
      memcpy(&sh, d + at, sizeof sh);
      if (sh.sh_type != want || sh.sh_entsize != sizeof(Elf64_Sym) || sh.sh_offset + sh.sh_size > elf.size) continue;
      const uint64_t strs_at = eh.e_shoff + static_cast<uint64_t>(sh.sh_link) * eh.e_shentsize;
      if (sh.sh_link >= eh.e_shnum || strs_at + sizeof(Elf64_Shdr) > elf.size) continue;
      Elf64_Shdr strs;
      memcpy(&strs, d + strs_at, sizeof strs);
      if (strs.sh_offset + strs.sh_size > elf.size) continue;
      const uint64_t n = sh.sh_size / sizeof(Elf64_Sym);
      for (uint64_t k = 0; k < n; k++) {
        Elf64_Sym sym;
        memcpy(&sym, d + sh.sh_offset + k * sizeof(Elf64_Sym), sizeof sym);
        const int type = ELF64_ST_TYPE(sym.st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym.st_shndx == SHN_UNDEF) continue;
        if (vaddr < sym.st_value || vaddr >= sym.st_value + (sym.st_size ? sym.st_size : 1)) continue;
        if (sym.st_name >= strs.sh_size) continue;
        const char* name = reinterpret_cast<const char*>(d + strs.sh_offset + sym.st_name);
        const size_t len = strnlen(name, strs.sh_size - sym.st_name);
        *into = vaddr - sym.st_value;
        *size = sym.st_size;
        return std::string(name, len);
      }
    }
  }
  return std::string();
}

std::string Demangle(const std::string& name) {
  if (name.compare(0, 2, "_Z") != 0) return name;
  int status = 0;
  char* out = abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status);
  if (out == nullptr) return name;
  std::string text = status == 0 ? std::string(out) : name;
  free(out);
  return text;
}

// Modules opened during one capture's symbolizing (a handful at most).
struct Symbolizer {
  std::vector<Mapping> maps = ReadMaps();
  std::vector<Elf> open;
  ~Symbolizer() {
    for (Elf& e : open) Close(&e);
  }
  // {symbol, module} for `addr`, false when no mapping holds it; *start:
  // the address where that function begins, 0 when unknown; *size (when
  // asked): its size in bytes, 0 when unknown.
  bool Name(uintptr_t addr, std::string* symbol, std::string* module, uintptr_t* start, uintptr_t* size = nullptr) {
    uintptr_t ignored_size = 0;
    if (size == nullptr) size = &ignored_size;
    // The unwinder asks about the same addresses many times.
    auto known = named.find(addr);
    if (known == named.end()) {
      Named n;
      n.found = Lookup(addr, &n.symbol, &n.module, &n.start, &n.size);
      known = named.emplace(addr, n).first;
    }
    const Named& n = known->second;
    *symbol = n.symbol;
    *module = n.module;
    *start = n.start;
    *size = n.size;
    return n.found;
  }
  struct Named {
    bool found;
    std::string symbol, module;
    uintptr_t start, size;
  };
  std::map<uintptr_t, Named> named;
  bool Lookup(uintptr_t addr, std::string* symbol, std::string* module, uintptr_t* start, uintptr_t* size) {
    const Mapping* m = Find(maps, addr);
    symbol->clear();
    module->clear();
    *start = 0;
    *size = 0;
    if (m == nullptr) return false;
    if (m->path.empty() || m->path[0] != '/') {
      *module = m->path.empty() ? "[anonymous]" : m->path;  // JIT code, [vdso]
      return true;
    }
    *module = Basename(m->path);
    Elf* elf = nullptr;
    for (Elf& e : open) {
      if (e.path == m->path) elf = &e;
    }
    if (elf == nullptr) {
      open.push_back(Elf());
      elf = &open.back();
      if (!Open(m->path, elf)) elf->data = nullptr;
    }
    uintptr_t into = 0;
    *symbol = Demangle(ElfSymbol(*elf, addr - m->start + m->offset, &into, size));
    if (!symbol->empty()) *start = addr - into;
    return true;
  }
  // Where the stub at `stub` (a PLT entry) jumps: the value of the GOT slot
  // it jumps through, 0 when it is no stub known here. The stub and the slot
  // are this process's own mapped memory.
  uintptr_t StubTarget(uintptr_t stub) const {
    const Mapping* m = Find(maps, stub);
    if (m == nullptr || !m->exec || stub + 16 > m->end) return 0;
#if defined(__x86_64__)
    const unsigned char* p = reinterpret_cast<const unsigned char*>(stub);
    if (p[0] == 0xF3 && p[1] == 0x0F && p[2] == 0x1E && p[3] == 0xFA) p += 4;  // endbr64
    if (p[0] == 0xF2) p++;                                                    // bnd
    if (p[0] != 0xFF || p[1] != 0x25) return 0;                               // jmp *disp32(%rip)
    int32_t disp;
    memcpy(&disp, p + 2, 4);
    const uintptr_t slot_addr = reinterpret_cast<uintptr_t>(p + 6) + static_cast<intptr_t>(disp);
    const Mapping* got = Find(maps, slot_addr);
    if (got == nullptr || slot_addr + sizeof(uintptr_t) > got->end) return 0;
    uintptr_t value;
    memcpy(&value, reinterpret_cast<const void*>(slot_addr), sizeof value);
    return value;
#else
    return 0;  // arm64 stubs are not decoded
#endif
  }
  // True when function `fn` (its code ending at `end`; 0: unknown) jumps to
  // `dest`, directly or through a stub that leads there: a tail call, which
  // leaves no frame of `fn` on the stack. OpenSSL has many: CRYPTO_free's
  // last act is `jmp free`, and sha512_block_data_order picks its AVX2 body
  // with a conditional jump. Every byte offset is tried as a jump; a match
  // must land exactly on `dest`, which stray bytes do not.
  bool TailJumpsTo(uintptr_t fn, uintptr_t end, uintptr_t dest) const {
    constexpr uintptr_t kUnknownSize = 256, kMaxSize = 4096;  // bytes scanned
    const Mapping* m = Find(maps, fn);
    if (m == nullptr || !m->exec || dest == 0) return false;
    if (end <= fn) end = fn + kUnknownSize;
    if (end > fn + kMaxSize) end = fn + kMaxSize;
    if (end > m->end) end = m->end;
#if defined(__x86_64__)
    for (uintptr_t at = fn; at + 5 <= end; at++) {
      const unsigned char* p = reinterpret_cast<const unsigned char*>(at);
      int length = 0;
      if (p[0] == 0xE9) length = 5;                                                   // jmp rel32
      if (p[0] == 0x0F && (p[1] & 0xF0) == 0x80 && at + 6 <= end) length = 6;          // jcc rel32
      if (length == 0) continue;
      int32_t rel;
      memcpy(&rel, p + length - 4, 4);
      const uintptr_t to = at + length + static_cast<intptr_t>(rel);
      if (to == dest || StubTarget(to) == dest) return true;
    }
#elif defined(__aarch64__)
    for (uintptr_t at = fn; at + 4 <= end; at += 4) {
      uint32_t insn;
      memcpy(&insn, reinterpret_cast<const void*>(at), 4);
      if ((insn & 0xFC000000u) != 0x14000000u) continue;  // b imm26
      const int32_t imm = static_cast<int32_t>(insn << 6) >> 6;
      if (at + static_cast<intptr_t>(imm) * 4 == dest) return true;
    }
#endif
    return false;
  }
  // True when `addr` lies in executable code of a file and the bytes before
  // it are a call instruction: a plausible return address.
  // *target: where a direct call before it leads (0 for an indirect one).
  bool LooksLikeReturn(uintptr_t addr, uintptr_t* target = nullptr) const {
    if (target != nullptr) *target = 0;
    const Mapping* m = Find(maps, addr);
    if (m == nullptr || !m->exec || m->path.empty() || m->path[0] != '/' || addr < m->start + 8) return false;
#if defined(__x86_64__)
    // Readable: the page is in an executable file mapping of this process.
    const unsigned char* p = reinterpret_cast<const unsigned char*>(addr);
    if (p[-5] == 0xE8) {                                           // call rel32
      int32_t rel;
      memcpy(&rel, p - 4, 4);
      if (target != nullptr) *target = addr + static_cast<intptr_t>(rel);
      return true;
    }
    if (p[-2] == 0xFF && (p[-1] & 0x38) == 0x10) return true;      // call *reg
    if (p[-3] == 0xFF && (p[-2] & 0x38) == 0x10) return true;      // call *disp8(reg)
    if (p[-6] == 0xFF && (p[-5] & 0x38) == 0x10) return true;      // call *disp32 / rip
    if (p[-7] == 0xFF && (p[-6] & 0x38) == 0x10) return true;      // call *disp32(sib)
    return false;
#elif defined(__aarch64__)
    uint32_t insn;
    memcpy(&insn, reinterpret_cast<const void*>(addr - 4), 4);
    if ((insn & 0xFC000000u) == 0x94000000u) {  // bl imm26
      const int32_t imm = static_cast<int32_t>(insn << 6) >> 6;
      if (target != nullptr) *target = addr - 4 + static_cast<intptr_t>(imm) * 4;
      return true;
    }
    return (insn & 0xFFFFFC1Fu) == 0xD63F0000u;  // blr

#else
    return false;
#endif
  }
};

// Signals the target and waits at most wait_ms for its handler to fill the
// slot; copies it to *copy. False when it did not answer.
bool Sample(const NativeStackTarget& target, int sig, int64_t wait_ms, Slot* copy) {
  pthread_mutex_lock(&capture_mutex);
  slot.stack_lo = target.stack_lo;
  slot.stack_hi = target.stack_hi;
  slot_state.store(target.tid, std::memory_order_release);  // arm for this tid
  captures.fetch_add(1);
  bool answered = false;
  if (syscall(SYS_tgkill, getpid(), target.tid, sig) == 0) {
    const int64_t deadline = Now(CLOCK_MONOTONIC) + wait_ms * 1000000;
    for (;;) {
      if (slot_state.load(std::memory_order_acquire) == -2) {
        answered = true;
        break;
      }
      if (Now(CLOCK_MONOTONIC) >= deadline) break;
      timespec pause = {0, 50 * 1000};
      nanosleep(&pause, nullptr);
    }
  }
  if (!answered) {
    // Disarm, unless the handler claimed the slot meanwhile: then it is
    // writing (a bounded copy) and its answer is taken.
    int armed = target.tid;
    if (!slot_state.compare_exchange_strong(armed, 0)) {
      while (slot_state.load(std::memory_order_acquire) != -2) sched_yield();
      answered = true;
    }
  }
  if (answered) {
    memcpy(copy, &slot, sizeof *copy);
#if defined(PULSE_VALGRIND)
    // The memcheck build only (test/sanitize/build.sh): the window holds raw
    // stack words, slots the stuck thread never wrote among them, and the
    // symbolizer reads them all on purpose, as candidates it checks against
    // the code mappings. Marked defined here, in the copy only, so memcheck
    // still judges every other read.
    VALGRIND_MAKE_MEM_DEFINED(copy->words, sizeof copy->words);
    VALGRIND_MAKE_MEM_DEFINED(copy->chain_ra, sizeof copy->chain_ra);
#endif
  }
  slot_state.store(0, std::memory_order_release);
  pthread_mutex_unlock(&capture_mutex);
  return answered;
}

// The capture's signal; 0, with *reason set, when it cannot be used.
int UsableSignal(std::string* reason) {
  const int sig = capture_signal.load();
  // Someone may have installed a handler of their own since: never signal it.
  struct sigaction now;
  if (sig <= 0 || sigaction(sig, nullptr, &now) != 0 || !(now.sa_flags & SA_SIGINFO) ||
      now.sa_sigaction != OnSignal) {
    *reason = "nativeStack: signal in use (another handler replaced the capture's)";
    return 0;
  }
  return sig;
}

}  // namespace

struct NativeStackStress {
  NativeStackTarget target;
  int count = 0;
  int gap_us = 0;
  int sent = 0;                    // the stress thread's until joined
  std::vector<int64_t> handler_ns;  // the stress thread's until joined
  std::atomic<bool> done{false};   // set by the stress thread as it ends
  pthread_t thread{};
};

namespace {

void* StressMain(void* arg) {
  NativeStackStress* st = static_cast<NativeStackStress*>(arg);
  std::string reason;
  const int sig = UsableSignal(&reason);
  Slot* copy = static_cast<Slot*>(malloc(sizeof(Slot)));
  for (int i = 0; sig > 0 && copy != nullptr && i < st->count; i++) {
    st->sent++;
    if (Sample(st->target, sig, 20, copy)) st->handler_ns.push_back(copy->handler_ns);
    timespec gap = {st->gap_us / 1000000, (st->gap_us % 1000000) * 1000L};
    nanosleep(&gap, nullptr);
  }
  free(copy);
  st->done.store(true);
  return nullptr;
}

}  // namespace

NativeStackStress* NativeStackStressStart(const NativeStackTarget& target, int count, int gap_us) {
  NativeStackStress* st = new NativeStackStress();
  st->target = target;
  st->count = count;
  st->gap_us = gap_us;
  if (pthread_create(&st->thread, nullptr, StressMain, st) != 0) {
    delete st;
    return nullptr;
  }
  return st;
}

bool NativeStackStressDone(NativeStackStress* stress) { return stress->done.load(); }

std::vector<int64_t> NativeStackStressJoin(NativeStackStress* stress, int* sent) {
  pthread_join(stress->thread, nullptr);
  *sent = stress->sent;
  std::vector<int64_t> out;
  out.swap(stress->handler_ns);
  delete stress;
  return out;
}

NativeStackTarget NativeStackPrepare(bool enabled) {
  NativeStackTarget target;
  target.enabled = enabled;
  target.tid = static_cast<pid_t>(syscall(SYS_gettid));
#if !defined(__x86_64__) && !defined(__aarch64__)
  target.unavailable = "nativeStack is supported on x64 and arm64 only";
  return target;
#endif
  if (!enabled) return target;
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* addr = nullptr;
    size_t size = 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
      target.stack_lo = reinterpret_cast<uintptr_t>(addr);
      target.stack_hi = target.stack_lo + size;
    }
    pthread_attr_destroy(&attr);
  }
  if (target.stack_hi == 0) target.unavailable = "nativeStack: the thread's stack bounds are unknown";
  const int sig = InstallSignal();
  if (sig < 0) {
    target.unavailable = "nativeStack: signal in use (every real-time signal it could take has a handler)";
  }
  return target;
}

uint64_t NativeStackCaptures() { return captures.load(); }
int NativeStackSignal() { return capture_signal.load() > 0 ? capture_signal.load() : 0; }

NativeStack CaptureNativeStack(const NativeStackTarget& target, int64_t wait_ms) {
  NativeStack out;
  out.json = "null";
  out.top_json = "null";
  if (!target.enabled) {
    out.reason = "nativeStack is off";
    return out;
  }
  if (!target.unavailable.empty()) {
    out.reason = target.unavailable;
    return out;
  }
  const int sig = UsableSignal(&out.reason);
  if (sig == 0) return out;
  // Heap, not the heartbeat thread's small stack: 16 KB of words.
  std::vector<Slot> holder(1);
  Slot& copy = holder[0];
  if (!Sample(target, sig, wait_ms, &copy)) {
    out.reason = "nativeStack: the thread did not answer the signal within " + std::to_string(wait_ms) + " ms";
    return out;
  }

  // Innermost first: pc, then the frame-pointer chain while it holds
  // plausible return addresses. Where it breaks off early (code built
  // without frame pointers), the raw words are searched for return
  // addresses: a word counts when a call instruction precedes it and that
  // call leads to the function of the frame found just inside it (stale
  // words left by earlier calls fail this); failing that, when a call
  // further up leads into the word's own function (details below).
  out.handler_ns = copy.handler_ns;
  Symbolizer sym;
  struct Frame {
    std::string symbol, module;
    uintptr_t start;
  };
  std::vector<Frame> frames;
  auto add = [&](uintptr_t addr, bool innermost) {
    Frame f;
    // A return address points after its call: the byte before it is the call's.
    if (!sym.Name(innermost ? addr : addr - 1, &f.symbol, &f.module, &f.start)) return false;
    frames.push_back(f);
    return true;
  };
  add(copy.pc, true);
  // Follows frame records (fp, return address) through the copied words,
  // starting at words[at] = a saved frame pointer; true if it added a frame.
  const uintptr_t base = copy.sp & ~(sizeof(uintptr_t) - 1);
  auto word_at = [&](uintptr_t addr, uintptr_t* value) {
    if (addr < base || addr % sizeof(uintptr_t) != 0) return false;
    const uintptr_t index = (addr - base) / sizeof(uintptr_t);
    if (index >= static_cast<uintptr_t>(copy.window)) return false;
    *value = copy.words[index];
    return true;
  };
  auto Chain = [&](int at) {
    bool added = false;
    uintptr_t low = base + static_cast<uintptr_t>(at) * sizeof(uintptr_t);
    uintptr_t fp = copy.words[at];
    uintptr_t ra = 0, next = 0;
    while (frames.size() < static_cast<size_t>(kMaxFrames) && fp > low && word_at(fp + sizeof(uintptr_t), &ra) &&
           word_at(fp, &next) && sym.LooksLikeReturn(ra) && add(ra, false)) {
      added = true;
      low = fp;
      fp = next;
    }
    return added;
  };
  int trusted = 0;
  for (int i = 0; i < copy.chain && trusted == i; i++) {
    if (!sym.LooksLikeReturn(copy.chain_ra[i])) break;
    trusted++;
  }
  if (trusted >= 2) {
    for (int i = 0; i < trusted && frames.size() < static_cast<size_t>(kMaxFrames); i++) add(copy.chain_ra[i], false);
  } else {
    // Whether words[i] returns from a call that leads to `inner`'s function:
    // only a direct call can be checked: to the start of that function, to
    // a stub (the PLT) that jumps there, or to a function that tail-jumps
    // there. Where the inner symbol is unknown, into its module.
    auto Calls = [&](int i, const Frame& inner) {
      uintptr_t target = 0;
      if (!sym.LooksLikeReturn(copy.words[i], &target) || target == 0) return false;
      std::string ts, tm, module;
      uintptr_t tstart = 0, tsize = 0, ignored = 0;
      if (!sym.Name(target, &ts, &tm, &tstart, &tsize) || !sym.Name(copy.words[i] - 1, &ts, &module, &ignored)) return false;
      const uintptr_t through = tstart != target && tm == module ? sym.StubTarget(target) : 0;
      std::string vs, vm;
      uintptr_t vstart = 0, vsize = 0;
      const bool via_known = through != 0 && sym.Name(through, &vs, &vm, &vstart, &vsize);
#if defined(__aarch64__)
      if (tstart != target && tm == module && module != inner.module) return true;  // stubs not decoded
#endif
      // An unnamed inner function (a library's internal one, its own symbol
      // table stripped): a call into its module, to a function start or to
      // an unnamed internal function there.
      if (inner.start == 0) return via_known ? vm == inner.module : (tstart == target || tstart == 0) && tm == inner.module;
      if (target == inner.start || (via_known && through == inner.start)) return true;
      const uintptr_t fn = via_known ? through : target;
      const uintptr_t fstart = via_known ? vstart : tstart, fsize = via_known ? vsize : tsize;
      if (sym.TailJumpsTo(fn, fstart == fn && fsize > 0 ? fn + fsize : 0, inner.start)) return true;
      return false;
    };
    // Where no word passes that check, a return address that cannot be
    // checked from below (an indirect call, such as OpenSSL's call of a
    // provider's free function, which then tail-jumps to free) is checked
    // from above: taken when a checkable word further up returns into its
    // function. A stale word seldom passes; a stale pair can (dead frames
    // lie in big live ones), so this second way is tried only after the
    // first has failed for the whole window, only below a named function
    // (not JIT code), and only for a word near the inner frame.
    constexpr int kAbove = 256;  // words looked through: 2 KB of frame
    constexpr int kNear = 128;   // words past the inner frame's return address
    auto CheckedAbove = [&](int i) {
      Frame own;
      if (!sym.Name(copy.words[i] - 1, &own.symbol, &own.module, &own.start) || own.start == 0) return false;
      for (int j = i + 1; j < copy.window && j <= i + kAbove; j++) {
        if (sym.LooksLikeReturn(copy.words[j]) && Calls(j, own)) return true;
      }
      return false;
    };
    int from = 0;
    while (frames.size() < static_cast<size_t>(kMaxFrames)) {
      const Frame inner = frames.back();
      int at = -1;
      for (int i = from; i < copy.window && at < 0; i++) {
        if (sym.LooksLikeReturn(copy.words[i]) && Calls(i, inner)) at = i;
      }
      for (int i = from; inner.start != 0 && i < copy.window && i < from + kNear && at < 0; i++) {
        if (sym.LooksLikeReturn(copy.words[i]) && CheckedAbove(i)) at = i;
      }
      if (at < 0) break;
      add(copy.words[at], false);
      // A callee that keeps frame pointers saved its caller's just below this
      // return address: from there, the frame-pointer chain, inside the copy.
      if (at >= 1 && Chain(at - 1)) break;
      from = at + 1;
    }
  }
  std::string json = "[";
  int n = 0;
  for (const Frame& f : frames) {
    if (n > 0) json += ",";
    json += "{\"symbol\":" + JsonStringOrNull(f.symbol) + ",\"module\":\"" + JsonEscape(f.module) + "\"}";
    if (n == 0) out.first = (f.symbol.empty() ? std::string("<unknown>") : f.symbol) + " (" + f.module + ")";
    n++;
    if (n == kTopFrames) out.top_json = json + "]";
  }
  out.json = json + "]";
  if (n < kTopFrames) out.top_json = out.json;
  return out;
}

}  // namespace pulse
