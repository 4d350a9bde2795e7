/*
 * Test-only stand-in for GNU libstdc++.so.6 on musl, just enough to run the
 * musl build of Bun here (Debian has musl's loader and libc but no musl
 * libstdc++). It defines the 39 libstdc++ symbols that binary imports (and
 * __cxa_guard_abort, which goes with the guards), with the same ABI: the
 * red-black tree and list node helpers behind std::map and std::list, the
 * hash table's bucket policy, std::condition_variable, the steady clock,
 * std::call_once's hooks, static-local guards, thread_local destructors and
 * the class type_info vtables. Exceptions are never thrown: the __throw_*
 * helpers print and abort, as a -fno-exceptions build does. Never shipped;
 * test/runtimes/run.sh builds it with zig for the musl rows.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPORT(name) __asm__(name) __attribute__((visibility("default")))

static void die(const char *what, const char *detail) {
  fprintf(stderr, "libstdc++ stand-in: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  abort();
}

/* ---- std::_Rb_tree_node_base helpers (std::map, std::set) ---------------- */

enum { kRed = 0, kBlack = 1 };
typedef struct Node {
  int color;
  struct Node *parent, *left, *right;
} Node;
/* The header node: parent is the root, left the leftmost, right the rightmost. */

Node *rb_increment(Node *x) EXPORT("_ZSt18_Rb_tree_incrementPSt18_Rb_tree_node_base");
Node *rb_increment(Node *x) {
  if (x->right) {
    x = x->right;
    while (x->left) x = x->left;
    return x;
  }
  Node *y = x->parent;
  while (x == y->right) {
    x = y;
    y = y->parent;
  }
  /* From the rightmost node of a one-node tree, y is the header: stay there. */
  return x->right != y ? y : x;
}

Node *rb_decrement(Node *x) EXPORT("_ZSt18_Rb_tree_decrementPSt18_Rb_tree_node_base");
Node *rb_decrement(Node *x) {
  if (x->color == kRed && x->parent->parent == x) return x->right; /* end() -> rightmost */
  if (x->left) {
    Node *y = x->left;
    while (y->right) y = y->right;
    return y;
  }
  Node *y = x->parent;
  while (x == y->left) {
    x = y;
    y = y->parent;
  }
  return y;
}

static void rotate_left(Node *x, Node **root) {
  Node *y = x->right;
  x->right = y->left;
  if (y->left) y->left->parent = x;
  y->parent = x->parent;
  if (x == *root) *root = y;
  else if (x == x->parent->left) x->parent->left = y;
  else x->parent->right = y;
  y->left = x;
  x->parent = y;
}

static void rotate_right(Node *x, Node **root) {
  Node *y = x->left;
  x->left = y->right;
  if (y->right) y->right->parent = x;
  y->parent = x->parent;
  if (x == *root) *root = y;
  else if (x == x->parent->right) x->parent->right = y;
  else x->parent->left = y;
  y->right = x;
  x->parent = y;
}

void rb_insert(int insert_left, Node *x, Node *p, Node *header)
    EXPORT("_ZSt29_Rb_tree_insert_and_rebalancebPSt18_Rb_tree_node_baseS0_RS_");
void rb_insert(int insert_left, Node *x, Node *p, Node *header) {
  Node **root = &header->parent;
  x->parent = p;
  x->left = x->right = NULL;
  x->color = kRed;
  if (insert_left) {
    p->left = x; /* also the leftmost when p is the header (empty tree) */
    if (p == header) {
      header->parent = x;
      header->right = x;
    } else if (p == header->left) {
      header->left = x;
    }
  } else {
    p->right = x;
    if (p == header->right) header->right = x;
  }
  while (x != *root && x->parent->color == kRed) {
    Node *xpp = x->parent->parent;
    if (x->parent == xpp->left) {
      Node *y = xpp->right;
      if (y && y->color == kRed) {
        x->parent->color = kBlack;
        y->color = kBlack;
        xpp->color = kRed;
        x = xpp;
      } else {
        if (x == x->parent->right) {
          x = x->parent;
          rotate_left(x, root);
        }
        x->parent->color = kBlack;
        xpp->color = kRed;
        rotate_right(xpp, root);
      }
    } else {
      Node *y = xpp->left;
      if (y && y->color == kRed) {
        x->parent->color = kBlack;
        y->color = kBlack;
        xpp->color = kRed;
        x = xpp;
      } else {
        if (x == x->parent->left) {
          x = x->parent;
          rotate_right(x, root);
        }
        x->parent->color = kBlack;
        xpp->color = kRed;
        rotate_left(xpp, root);
      }
    }
  }
  (*root)->color = kBlack;
}

static int black(const Node *n) { return n == NULL || n->color == kBlack; }

/* Unlinks z from the tree and returns it, for the caller to free. */
Node *rb_erase(Node *z, Node *header) EXPORT("_ZSt28_Rb_tree_rebalance_for_erasePSt18_Rb_tree_node_baseRS_");
Node *rb_erase(Node *z, Node *header) {
  Node **root = &header->parent, **leftmost = &header->left, **rightmost = &header->right;
  Node *y = z, *x, *x_parent;
  if (y->left == NULL) {
    x = y->right;
  } else if (y->right == NULL) {
    x = y->left;
  } else {
    y = y->right; /* z's successor takes z's place */
    while (y->left) y = y->left;
    x = y->right;
  }
  if (y != z) {
    z->left->parent = y;
    y->left = z->left;
    if (y != z->right) {
      x_parent = y->parent;
      if (x) x->parent = y->parent;
      y->parent->left = x;
      y->right = z->right;
      z->right->parent = y;
    } else {
      x_parent = y;
    }
    if (*root == z) *root = y;
    else if (z->parent->left == z) z->parent->left = y;
    else z->parent->right = y;
    y->parent = z->parent;
    int c = y->color;
    y->color = z->color;
    z->color = c;
    y = z; /* y is now the node that left the tree */
  } else {
    x_parent = y->parent;
    if (x) x->parent = y->parent;
    if (*root == z) *root = x;
    else if (z->parent->left == z) z->parent->left = x;
    else z->parent->right = x;
    if (*leftmost == z) {
      if (z->right == NULL) {
        *leftmost = z->parent;
      } else {
        Node *m = x;
        while (m->left) m = m->left;
        *leftmost = m;
      }
    }
    if (*rightmost == z) {
      if (z->left == NULL) {
        *rightmost = z->parent;
      } else {
        Node *m = x;
        while (m->right) m = m->right;
        *rightmost = m;
      }
    }
  }
  if (y->color != kRed) {
    while (x != *root && black(x)) {
      if (x == x_parent->left) {
        Node *w = x_parent->right;
        if (w->color == kRed) {
          w->color = kBlack;
          x_parent->color = kRed;
          rotate_left(x_parent, root);
          w = x_parent->right;
        }
        if (black(w->left) && black(w->right)) {
          w->color = kRed;
          x = x_parent;
          x_parent = x_parent->parent;
        } else {
          if (black(w->right)) {
            w->left->color = kBlack;
            w->color = kRed;
            rotate_right(w, root);
            w = x_parent->right;
          }
          w->color = x_parent->color;
          x_parent->color = kBlack;
          if (w->right) w->right->color = kBlack;
          rotate_left(x_parent, root);
          break;
        }
      } else {
        Node *w = x_parent->left;
        if (w->color == kRed) {
          w->color = kBlack;
          x_parent->color = kRed;
          rotate_right(x_parent, root);
          w = x_parent->left;
        }
        if (black(w->right) && black(w->left)) {
          w->color = kRed;
          x = x_parent;
          x_parent = x_parent->parent;
        } else {
          if (black(w->left)) {
            w->right->color = kBlack;
            w->color = kRed;
            rotate_left(w, root);
            w = x_parent->left;
          }
          w->color = x_parent->color;
          x_parent->color = kBlack;
          if (w->left) w->left->color = kBlack;
          rotate_right(x_parent, root);
          break;
        }
      }
    }
    if (x) x->color = kBlack;
  }
  return y;
}

/* ---- std::__detail::_List_node_base (std::list) -------------------------- */

typedef struct ListNode {
  struct ListNode *next, *prev;
} ListNode;

void list_hook(ListNode *self, ListNode *pos) EXPORT("_ZNSt8__detail15_List_node_base7_M_hookEPS0_");
void list_hook(ListNode *self, ListNode *pos) { /* insert self before pos */
  self->next = pos;
  self->prev = pos->prev;
  pos->prev->next = self;
  pos->prev = self;
}

void list_unhook(ListNode *self) EXPORT("_ZNSt8__detail15_List_node_base9_M_unhookEv");
void list_unhook(ListNode *self) {
  self->prev->next = self->next;
  self->next->prev = self->prev;
}

/* ---- hash tables: std::_Hash_bytes and the bucket policy ------------------ */

size_t hash_bytes(const void *data, size_t len, size_t seed) EXPORT("_ZSt11_Hash_bytesPKvmm");
size_t hash_bytes(const void *data, size_t len, size_t seed) {
  /* FNV-1a, seeded, with a final mix: only consistency within a process matters. */
  uint64_t h = 1469598103934665603ull ^ seed;
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return (size_t)h;
}

typedef struct RehashPolicy {
  float max_load_factor;
  size_t next_resize;
} RehashPolicy;

static int is_prime(size_t n) {
  if (n < 2) return 0;
  for (size_t d = 2; d * d <= n; d++)
    if (n % d == 0) return 0;
  return 1;
}

/* The smallest prime bucket count >= n; the element count that triggers the next growth. */
size_t next_bkt(const RehashPolicy *self, size_t n) EXPORT("_ZNKSt8__detail20_Prime_rehash_policy11_M_next_bktEm");
size_t next_bkt(const RehashPolicy *self, size_t n) {
  size_t b = n < 2 ? 2 : n;
  while (!is_prime(b)) b++;
  ((RehashPolicy *)self)->next_resize = (size_t)((double)b * self->max_load_factor);
  return b;
}

typedef struct NeedRehash {
  _Bool rehash;
  size_t buckets;
} NeedRehash;

NeedRehash need_rehash(const RehashPolicy *self, size_t n_bkt, size_t n_elt, size_t n_ins)
    EXPORT("_ZNKSt8__detail20_Prime_rehash_policy14_M_need_rehashEmmm");
NeedRehash need_rehash(const RehashPolicy *self, size_t n_bkt, size_t n_elt, size_t n_ins) {
  NeedRehash none = {0, 0};
  if (n_elt + n_ins <= self->next_resize) return none;
  double min_bkts = (double)(n_elt + n_ins) / self->max_load_factor;
  if (min_bkts >= (double)n_bkt) {
    size_t want = (size_t)min_bkts + 1;
    if (want < n_bkt * 2) want = n_bkt * 2;
    NeedRehash grow = {1, next_bkt(self, want)};
    return grow;
  }
  ((RehashPolicy *)self)->next_resize = (size_t)((double)n_bkt * self->max_load_factor);
  return none;
}

/* ---- std::condition_variable: a pthread_cond_t ---------------------------- */

typedef struct UniqueLock {
  pthread_mutex_t *mutex; /* std::mutex is a pthread_mutex_t */
  _Bool owns;
} UniqueLock;

void cv_ctor(pthread_cond_t *cv) EXPORT("_ZNSt18condition_variableC1Ev");
void cv_ctor(pthread_cond_t *cv) { pthread_cond_init(cv, NULL); }
void cv_dtor(pthread_cond_t *cv) EXPORT("_ZNSt18condition_variableD1Ev");
void cv_dtor(pthread_cond_t *cv) { pthread_cond_destroy(cv); }
void cv_notify_one(pthread_cond_t *cv) EXPORT("_ZNSt18condition_variable10notify_oneEv");
void cv_notify_one(pthread_cond_t *cv) { pthread_cond_signal(cv); }
void cv_notify_all(pthread_cond_t *cv) EXPORT("_ZNSt18condition_variable10notify_allEv");
void cv_notify_all(pthread_cond_t *cv) { pthread_cond_broadcast(cv); }
void cv_wait(pthread_cond_t *cv, UniqueLock *lock) EXPORT("_ZNSt18condition_variable4waitERSt11unique_lockISt5mutexE");
void cv_wait(pthread_cond_t *cv, UniqueLock *lock) { pthread_cond_wait(cv, lock->mutex); }

/* std::chrono::steady_clock::now(): nanoseconds of CLOCK_MONOTONIC. */
int64_t steady_now(void) EXPORT("_ZNSt6chrono3_V212steady_clock3nowEv");
int64_t steady_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- std::call_once: the callable travels in these two thread locals ------ */

__thread void (*once_call)(void) EXPORT("_ZSt11__once_call");
__thread void *once_callable EXPORT("_ZSt15__once_callable");
void once_proxy(void) EXPORT("__once_proxy");
void once_proxy(void) { once_call(); }

/* ---- terminate and new handlers ------------------------------------------- */

typedef void (*Handler)(void);
/* Set once at startup by the runtime, read on the way down: no lock. */
static Handler terminate_handler;
static Handler new_handler;

Handler set_terminate(Handler h) EXPORT("_ZSt13set_terminatePFvvE");
Handler set_terminate(Handler h) {
  Handler old = terminate_handler;
  terminate_handler = h;
  return old;
}
Handler get_new_handler(void) EXPORT("_ZSt15get_new_handlerv");
Handler get_new_handler(void) { return new_handler; }
void terminate(void) EXPORT("_ZSt9terminatev");
void terminate(void) {
  if (terminate_handler) terminate_handler();
  abort();
}

/* ---- the __throw_* helpers: no exceptions here, so they abort ------------- */

void throw_bad_alloc(void) EXPORT("_ZSt17__throw_bad_allocv");
void throw_bad_alloc(void) { die("std::bad_alloc", NULL); }
void throw_logic_error(const char *m) EXPORT("_ZSt19__throw_logic_errorPKc");
void throw_logic_error(const char *m) { die("std::logic_error", m); }
void throw_length_error(const char *m) EXPORT("_ZSt20__throw_length_errorPKc");
void throw_length_error(const char *m) { die("std::length_error", m); }
void throw_system_error(int e) EXPORT("_ZSt20__throw_system_errori");
void throw_system_error(int e) { die("std::system_error", strerror(e)); }
void throw_out_of_range_fmt(const char *fmt, ...) EXPORT("_ZSt24__throw_out_of_range_fmtPKcz");
void throw_out_of_range_fmt(const char *fmt, ...) { die("std::out_of_range", fmt); }
void throw_bad_function_call(void) EXPORT("_ZSt25__throw_bad_function_callv");
void throw_bad_function_call(void) { die("std::bad_function_call", NULL); }
void throw_bad_array_new_length(void) EXPORT("_ZSt28__throw_bad_array_new_lengthv");
void throw_bad_array_new_length(void) { die("std::bad_array_new_length", NULL); }
void glibcxx_assert_fail(const char *file, int line, const char *fn, const char *cond)
    EXPORT("_ZSt21__glibcxx_assert_failPKciS0_S0_");
void glibcxx_assert_fail(const char *file, int line, const char *fn, const char *cond) {
  fprintf(stderr, "libstdc++ stand-in: %s:%d: %s: assertion '%s' failed\n", file, line, fn, cond);
  abort();
}

/* ---- the C++ ABI (__cxa_*) ------------------------------------------------ */

void cxa_pure_virtual(void) EXPORT("__cxa_pure_virtual");
void cxa_pure_virtual(void) { die("pure virtual method called", NULL); }
void cxa_bad_typeid(void) EXPORT("__cxa_bad_typeid");
void cxa_bad_typeid(void) { die("std::bad_typeid", NULL); }

/* No demangler: "not a valid name" (-2), as the ABI allows. */
char *cxa_demangle(const char *name, char *buf, size_t *n, int *status) EXPORT("__cxa_demangle");
char *cxa_demangle(const char *name, char *buf, size_t *n, int *status) {
  (void)name, (void)buf, (void)n;
  if (status) *status = -2;
  return NULL;
}

/*
 * The vtables of the three type_info kinds of class types. The runtime's
 * type_info objects point into them; only __dynamic_cast below reads type
 * infos, and it tells the kinds apart by these addresses, so the slots
 * (virtual functions of libstdc++'s own walk) stay empty.
 */
const void *class_type_info_vtable[8] EXPORT("_ZTVN10__cxxabiv117__class_type_infoE");
const void *si_class_type_info_vtable[8] EXPORT("_ZTVN10__cxxabiv120__si_class_type_infoE");
const void *vmi_class_type_info_vtable[8] EXPORT("_ZTVN10__cxxabiv121__vmi_class_type_infoE");

typedef struct TypeInfo {
  const void *vptr;
  const char *name;
} TypeInfo;
typedef struct SiTypeInfo {
  TypeInfo base;
  const TypeInfo *parent; /* the one public non-virtual base, at offset 0 */
} SiTypeInfo;
typedef struct VmiTypeInfo {
  TypeInfo base;
  unsigned flags, count;
  struct {
    const TypeInfo *type;
    long offset_flags; /* offset << 8; bit 0 virtual, bit 1 public */
  } bases[];
} VmiTypeInfo;

static int same_type(const TypeInfo *a, const TypeInfo *b) {
  return a == b || strcmp(a->name, b->name) == 0;
}

/* The subobject of type `want` in the object of type `type` at `obj`, or NULL. */
static void *find_base(const char *obj, const TypeInfo *type, const TypeInfo *want) {
  if (same_type(type, want)) return (void *)obj;
  if (type->vptr == (const void *)(si_class_type_info_vtable + 2)) {
    return find_base(obj, ((const SiTypeInfo *)type)->parent, want);
  }
  if (type->vptr != (const void *)(vmi_class_type_info_vtable + 2)) return NULL;
  const VmiTypeInfo *vmi = (const VmiTypeInfo *)type;
  for (unsigned i = 0; i < vmi->count; i++) {
    long of = vmi->bases[i].offset_flags;
    if (!(of & 2)) continue; /* not public */
    ptrdiff_t offset = of >> 8;
    if (of & 1) offset = *(const ptrdiff_t *)(*(const char *const *)obj + offset); /* virtual: in the vtable */
    void *found = find_base(obj + offset, vmi->bases[i].type, want);
    if (found) return found;
  }
  return NULL;
}

/* Finds the target in the whole (most derived) object; NULL when it is not there. */
void *cxa_dynamic_cast(const void *src, const void *src_type, const void *dst_type, ptrdiff_t src2dst)
    EXPORT("__dynamic_cast");
void *cxa_dynamic_cast(const void *src, const void *src_type, const void *dst_type, ptrdiff_t src2dst) {
  (void)src_type, (void)src2dst;
  const intptr_t *vtable = *(const intptr_t *const *)src;
  const char *whole = (const char *)src + vtable[-2]; /* offset to top */
  return find_base(whole, (const TypeInfo *)vtable[-1], dst_type);
}

/* Static locals: byte 0 of the guard says "done", byte 1 "in progress". */
static pthread_mutex_t guard_mutex = PTHREAD_MUTEX_INITIALIZER; /* guards bytes 0 and 1 of every guard */
static pthread_cond_t guard_cond = PTHREAD_COND_INITIALIZER;    /* an initialisation finished or failed */

int cxa_guard_acquire(unsigned char *g) EXPORT("__cxa_guard_acquire");
int cxa_guard_acquire(unsigned char *g) {
  if (__atomic_load_n(&g[0], __ATOMIC_ACQUIRE)) return 0;
  pthread_mutex_lock(&guard_mutex);
  for (;;) {
    if (g[0]) {
      pthread_mutex_unlock(&guard_mutex);
      return 0;
    }
    if (!g[1]) {
      g[1] = 1;
      pthread_mutex_unlock(&guard_mutex);
      return 1;
    }
    pthread_cond_wait(&guard_cond, &guard_mutex);
  }
}

void cxa_guard_release(unsigned char *g) EXPORT("__cxa_guard_release");
void cxa_guard_release(unsigned char *g) {
  pthread_mutex_lock(&guard_mutex);
  __atomic_store_n(&g[0], 1, __ATOMIC_RELEASE);
  g[1] = 0;
  pthread_cond_broadcast(&guard_cond);
  pthread_mutex_unlock(&guard_mutex);
}

void cxa_guard_abort(unsigned char *g) EXPORT("__cxa_guard_abort");
void cxa_guard_abort(unsigned char *g) {
  pthread_mutex_lock(&guard_mutex);
  g[1] = 0;
  pthread_cond_broadcast(&guard_cond);
  pthread_mutex_unlock(&guard_mutex);
}

/* thread_local destructors: a per-thread list, run by a pthread key at thread exit. */
typedef struct Dtor {
  void (*fn)(void *);
  void *obj;
  struct Dtor *next;
} Dtor;
static pthread_key_t dtor_key;
static pthread_once_t dtor_once = PTHREAD_ONCE_INIT;

static void run_dtors(void *list) {
  for (Dtor *d = list; d != NULL;) {
    Dtor *next = d->next;
    d->fn(d->obj);
    free(d);
    d = next;
  }
}
static void make_dtor_key(void) { pthread_key_create(&dtor_key, run_dtors); }

int cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso) EXPORT("__cxa_thread_atexit_impl");
int cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso) {
  (void)dso;
  pthread_once(&dtor_once, make_dtor_key);
  Dtor *d = malloc(sizeof *d);
  if (d == NULL) return -1;
  d->fn = fn;
  d->obj = obj;
  d->next = pthread_getspecific(dtor_key); /* newest first: reverse order of construction */
  pthread_setspecific(dtor_key, d);
  return 0;
}
