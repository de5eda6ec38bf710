/* jit/llvm.c — one long-lived ORC LLJIT per context, the host target machine, and the
 * kernel cache.
 *
 * A kernel is compiled in its own LLVMContext (a ThreadSafeContext) and module: emitted by
 * the emitter (jit/cg.h), verified, optimized with a short pipeline, made an object file in
 * memory, added to the LLJIT under a resource tracker (so an entry's code can be released),
 * and looked up. The object is also what the object cache keeps (objcache.c): a kernel
 * found there skips LLVM and takes the same path from the object on. glibc's libmvec is
 * loaded into the process and the process's symbols are visible to JIT'd code, so kernels
 * call _ZGVeN16v_expf and friends directly.
 *
 * Cache: a hash table of JitEntry by key under one mutex. The first thread to ask for a
 * key compiles it with the mutex released; others asking meanwhile wait on a condition
 * variable; so concurrent requests compile once. Compiles share the target machine and
 * are serialized by `compile_lock` (one LLVM compile at a time per context).
 *
 * Tiering: jit_request queues a kernel for the background compile thread and returns at
 * once; the entry's fn is published atomically when the code is ready, so a run reads it
 * with no lock and switches tiers between two runs (or two kernels of one run).
 *
 * Exit: a process may exit (return from main, call exit) with its contexts alive and a
 * compile in flight. LLVM's static objects are destroyed then, under the compile thread's
 * feet (here 1 exit in 12 aborted or crashed). Every Jit is in a process-wide list, and a
 * handler registered with atexit after LLVM's statics exist (so it runs before their
 * destructors) stops each compile thread after its current request and joins it; no new
 * thread starts after that. LLVM makes some statics on first use, and atexit runs
 * last-in first-out: so before the process's first LLVM compile a small kernel is compiled
 * in the foreground (ensure_warm: on the thread that asks, before anything is queued for
 * the background) and the handler registered after it; a process whose kernels all come
 * from the object cache needs neither. The handler is registered again after the
 * process's 1st, 2nd, 4th, 8th... background compile, for statics that other kinds of
 * kernels make (stop_all runs that many times at exit; all but the first find nothing to
 * stop). Exits during the process's first background compile crashed 1-3 times in 24
 * with the handler alone (test_exit), 0 in 96 with the warm-up.
 *
 * Pass pipeline: "default<O2>" — the kernels arrive already vectorized by hand (explicit
 * <W x float> types), so what the pipeline must do is instcombine, LICM of per-row
 * scalars, and unrolling; O2 does that in a few milliseconds per kernel. */
#include <dlfcn.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jit.h"

bool jit_emit(const KnKernel *kk, LLVMContextRef C, LLVMModuleRef M, const char *name, int W,
              const char *mvec_prefix);

#define BUCKETS 1024

struct Jit {
  LLVMOrcLLJITRef lljit;
  LLVMTargetMachineRef tm;
  char *triple, *cpu, *features;
  int W;
  const char *mvec;
  char target[160];
  pthread_mutex_t lock;         /* the table, entry states, stats */
  pthread_cond_t changed;       /* an entry left JE_COMPILING */
  pthread_mutex_t compile_lock; /* the target machine and the LLJIT's IR layer */
  JitEntry *table[BUCKETS];
  JitStats stats;
  /* the background compiler: a FIFO of requests, one thread, started on first use */
  struct Request {
    const KnKernel *kk;
    const void *owner;
  } *queue;
  size_t qhead, qlen, qcap;
  const void *busy_owner; /* whose request the thread is compiling, or NULL */
  pthread_t thread;
  bool running, stopping;
  pthread_cond_t work;    /* the queue has a request, or stop */
  Jit *live_prev, *live_next; /* the process's list of Jits (live_lock) */
  ObjCache *oc;               /* objects on disk (objcache.c), or NULL */
  JitWarmUp warm;             /* the process's warm-up compile (ensure_warm) */
  size_t limit, resident, idle; /* native code: the bytes kept beyond what models hold (0:
                                   no limit), all the bytes held, and those no model holds
                                   (the LRU's) (lock) */
  JitEntry *lru_head, *lru_tail; /* ready entries no model holds, least recently released
                                    first: the eviction order (lock) */
};

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static Jit *live;
static atomic_bool exiting; /* set by stop_all: no compile thread starts any more */

/* Stop j's compile thread, if it runs, after its current request. */
static void stop_thread(Jit *j) {
  pthread_mutex_lock(&j->lock);
  bool running = j->running;
  j->stopping = true;
  j->qlen = 0;
  pthread_cond_broadcast(&j->work);
  pthread_mutex_unlock(&j->lock);
  if (running) pthread_join(j->thread, NULL);
  pthread_mutex_lock(&j->lock);
  j->running = false;
  pthread_mutex_unlock(&j->lock);
}

static void stop_all(void) {
  pthread_mutex_lock(&live_lock);
  atomic_store(&exiting, true);
  for (Jit *j = live; j; j = j->live_next) stop_thread(j);
  pthread_mutex_unlock(&live_lock);
}

/* Move an LLVMErrorRef's message into buf; true if there was an error. */
static bool failed(LLVMErrorRef e, char *buf, size_t n) {
  if (!e) return false;
  char *m = LLVMGetErrorMessage(e);
  snprintf(buf, n, "%s", m);
  LLVMDisposeErrorMessage(m);
  return true;
}

/* The process's first Jit compiles a small kernel on the calling thread (warm: the
 * runtime's pipeline on an exp over rows of 70, a loop and a masked tail) before any
 * background compile can start, so LLVM makes its lazy statics now, and then registers
 * stop_all after them ("Exit" above). It costs the first model compile of a process that
 * uses native code about 40 ms, what LLVM's first compile in a process costs anyway; the
 * background thread no longer pays it during the first runs. */
static pthread_mutex_t warm_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool warmed;
static _Thread_local bool warming; /* this thread runs the warm-up: no cache, no recursion */

static void warm_up(Jit *j) {
  if (j->warm) j->warm(j); /* (not counted: the counters are the user's kernels') */
  atexit(stop_all);
}

/* The warm-up, once per process, before the first kernel that LLVM compiles: on the
 * caller's thread (no lock held), so that the background thread never compiles first. A
 * process whose kernels all come from the object cache never runs it. */
static void ensure_warm(Jit *j) {
  if (atomic_load(&warmed) || warming) return;
  pthread_mutex_lock(&warm_lock);
  if (!atomic_load(&warmed)) {
    warming = true;
    warm_up(j);
    warming = false;
    atomic_store(&warmed, true);
  }
  pthread_mutex_unlock(&warm_lock);
}

/* LLVM's target registry, once per process. */
static void init_llvm(void) {
  LLVMInitializeNativeTarget();
  LLVMInitializeNativeAsmPrinter();
}

Jit *jit_new(JitWarmUp warm, const char *cache_dir, size_t code_limit, Err *err) {
  /* the warm-up (ensure_warm) runs before this Jit's first LLVM compile */
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, init_llvm);
  /* libmvec must be in the process for the JIT's symbol search */
  if (!dlopen("libmvec.so.1", RTLD_NOW | RTLD_GLOBAL)) {
    ir_err(err, DVM_ERR_UNSUPPORTED, "native tier: cannot load glibc's libmvec.so.1: %s", dlerror());
    return NULL;
  }
  Jit *j = calloc(1, sizeof *j);
  if (!j) return ir_err(err, DVM_ERR_NOMEM, "out of memory"), NULL;
  pthread_mutex_init(&j->lock, NULL); /* first: jit_free destroys them on every path */
  pthread_mutex_init(&j->compile_lock, NULL);
  pthread_cond_init(&j->changed, NULL);
  pthread_cond_init(&j->work, NULL);
  pthread_mutex_lock(&live_lock);
  if ((j->live_next = live)) live->live_prev = j;
  live = j;
  pthread_mutex_unlock(&live_lock);
  char msg[512];
  j->triple = LLVMGetDefaultTargetTriple();
  j->cpu = LLVMGetHostCPUName();
  j->features = LLVMGetHostCPUFeatures();
  j->W = strstr(j->features, "+avx512f") ? 16 : strstr(j->features, "+avx2") ? 8 : 4;
  j->mvec = j->W == 16 ? "_ZGVeN16" : j->W == 8 ? "_ZGVdN8" : "_ZGVbN4";
  snprintf(j->target, sizeof j->target, "%s %s, %d x f32", j->triple, j->cpu, j->W);
  LLVMTargetRef target;
  char *terr = NULL;
  if (LLVMGetTargetFromTriple(j->triple, &target, &terr)) {
    ir_err(err, DVM_ERR_UNSUPPORTED, "native tier: no LLVM target for %s: %s", j->triple, terr);
    LLVMDisposeMessage(terr);
    jit_free(j);
    return NULL;
  }
  j->tm = LLVMCreateTargetMachine(target, j->triple, j->cpu, j->features, LLVMCodeGenLevelAggressive,
                                  LLVMRelocDefault, LLVMCodeModelJITDefault);
  if (!j->tm) {
    ir_err(err, DVM_ERR_UNSUPPORTED, "native tier: no target machine for %s", j->cpu);
    jit_free(j);
    return NULL;
  }
  LLVMOrcJITTargetMachineBuilderRef jtmb;
  LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
  if (failed(LLVMOrcJITTargetMachineBuilderDetectHost(&jtmb), msg, sizeof msg)) {
    LLVMOrcDisposeLLJITBuilder(builder);
    ir_err(err, DVM_ERR_UNSUPPORTED, "native tier: %s", msg);
    jit_free(j);
    return NULL;
  }
  LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, jtmb);
  if (failed(LLVMOrcCreateLLJIT(&j->lljit, builder), msg, sizeof msg)) {
    ir_err(err, DVM_ERR_UNSUPPORTED, "native tier: cannot create the LLJIT: %s", msg);
    j->lljit = NULL;
    jit_free(j);
    return NULL;
  }
  LLVMOrcDefinitionGeneratorRef gen;
  if (failed(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(j->lljit),
                                                                  NULL, NULL),
             msg, sizeof msg)) {
    ir_err(err, DVM_ERR_UNSUPPORTED, "native tier: %s", msg);
    jit_free(j);
    return NULL;
  }
  LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(j->lljit), gen);
  unsigned major, minor, patch;
  LLVMGetVersion(&major, &minor, &patch);
  char stamp[1024]; /* what the code depends on besides the key */
  snprintf(stamp, sizeof stamp, "%s|%s|%s|llvm %u.%u.%u|O2", j->triple, j->cpu, j->features, major, minor, patch);
  j->oc = oc_open(cache_dir, stamp);
  j->warm = warm;
  j->limit = code_limit;
  return j;
}

void jit_free(Jit *j) {
  if (!j) return;
  pthread_mutex_lock(&live_lock);
  if (j->live_prev) j->live_prev->live_next = j->live_next;
  else live = j->live_next;
  if (j->live_next) j->live_next->live_prev = j->live_prev;
  pthread_mutex_unlock(&live_lock);
  stop_thread(j);
  free(j->queue);
  for (int b = 0; b < BUCKETS; b++)
    for (JitEntry *e = j->table[b], *next; e; e = next) {
      next = e->next;
      if (e->tracker) LLVMOrcReleaseResourceTracker(e->tracker); /* the code goes with the LLJIT */
      LLVMDisposeMessage(e->ir);
      free(e->asm_text);
      free(e);
    }
  if (j->lljit) {
    LLVMErrorRef e = LLVMOrcDisposeLLJIT(j->lljit);
    if (e) LLVMConsumeError(e);
  }
  pthread_mutex_destroy(&j->lock);
  pthread_mutex_destroy(&j->compile_lock);
  pthread_cond_destroy(&j->changed);
  pthread_cond_destroy(&j->work);
  if (j->tm) LLVMDisposeTargetMachine(j->tm);
  oc_close(j->oc);
  LLVMDisposeMessage(j->triple);
  LLVMDisposeMessage(j->cpu);
  LLVMDisposeMessage(j->features);
  free(j);
}

const char *jit_target(const Jit *j) { return j->target; }
int jit_lanes(const Jit *j) { return j->W; }

/* Add the object in mb (taken) to the LLJIT and look up its kernel `name`: the code, or
 * NULL with e->why set. ORC's session serializes what it must: no lock of ours needed. */
static KernelFn add_object(Jit *j, LLVMMemoryBufferRef mb, const char *name, JitEntry *e) {
  LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(j->lljit);
  LLVMOrcResourceTrackerRef rt = LLVMOrcJITDylibCreateResourceTracker(jd);
  LLVMOrcExecutorAddress addr = 0;
  size_t bytes = LLVMGetBufferSize(mb);
  bool bad = failed(LLVMOrcLLJITAddObjectFileWithRT(j->lljit, rt, mb), e->why, sizeof e->why) ||
             failed(LLVMOrcLLJITLookup(j->lljit, &addr, name), e->why, sizeof e->why);
  if (!bad && !addr) bad = true, snprintf(e->why, sizeof e->why, "internal: the JIT returned no address for %s", name);
  if (bad) { /* whatever the object defined goes with it */
    LLVMErrorRef r = LLVMOrcResourceTrackerRemove(rt);
    if (r) LLVMConsumeError(r);
    LLVMOrcReleaseResourceTracker(rt);
    return NULL;
  }
  e->tracker = rt, e->bytes = bytes; /* kept: eviction removes the code by it */
  return (KernelFn)(uintptr_t)addr;
}

/* ---- the bounded code cache ------------------------------------------------------------
 *
 * Native code is released by reference counts: a model holds each of its kernels' entries
 * from its compile (jit_get, jit_request) until it is destroyed (jit_release), and runs
 * execute code only through a live model's entries; an entry is evicted only when no
 * model holds it, under the Jit's lock, which taking a reference also needs. So no run can
 * be executing code that is released. Ready entries no model holds wait in LRU order and
 * are evicted, oldest first, while the resident bytes exceed the limit; an evicted entry
 * is new again (compiled, or loaded from disk, when asked for). Code that models hold is
 * never evicted: the limit bounds what is kept for models to come. */

static void lru_unlink(Jit *j, JitEntry *e) {
  if (e->lru_prev) e->lru_prev->lru_next = e->lru_next;
  else if (j->lru_head == e) j->lru_head = e->lru_next;
  else return; /* not in the list */
  j->idle -= e->bytes;
  if (e->lru_next) e->lru_next->lru_prev = e->lru_prev;
  else j->lru_tail = e->lru_prev;
  e->lru_prev = e->lru_next = NULL;
}

static void lru_append(Jit *j, JitEntry *e) {
  j->idle += e->bytes;
  e->lru_prev = j->lru_tail, e->lru_next = NULL;
  if (j->lru_tail) j->lru_tail->lru_next = e;
  else j->lru_head = e;
  j->lru_tail = e;
}

static uint32_t bucket(const uint8_t key[16]) {
  uint32_t b;
  memcpy(&b, key, 4);
  return b % BUCKETS;
}

/* While the code no model holds is over the limit, evict the least recently released
 * entries: their code removed, the entries freed (nothing refers to an entry no model
 * holds: the queue holds lowered kernels, and asking for the key again makes a new
 * entry). Lock held. */
static void evict(Jit *j) {
  while (j->limit && j->idle > j->limit && j->lru_head) {
    JitEntry *e = j->lru_head;
    lru_unlink(j, e);
    LLVMErrorRef r = LLVMOrcResourceTrackerRemove(e->tracker);
    if (r) LLVMConsumeError(r);
    LLVMOrcReleaseResourceTracker(e->tracker);
    j->resident -= e->bytes;
    j->stats.evictions++;
    JitEntry **p = &j->table[bucket(e->key)];
    while (*p != e) p = &(*p)->next;
    *p = e->next;
    LLVMDisposeMessage(e->ir);
    free(e->asm_text);
    free(e);
  }
}

/* Entry e's code counted in the resident bytes once it is ready, and the cache kept under
 * its limit (lock held). */
static void account(Jit *j, JitEntry *e) {
  if (atomic_load(&e->state) != JE_READY || e->counted) return;
  e->counted = true, j->resident += e->bytes;
  if (!e->refs) lru_append(j, e); /* its model went away while it compiled */
  evict(j);
}

/* One more holder of e (lock held): out of the eviction order. */
static void hold(Jit *j, JitEntry *e) {
  if (!e->refs++) lru_unlink(j, e);
}

/* One holder of e fewer (lock held): at none, into the eviction order (the caller evicts,
 * which may free e). */
static void drop(Jit *j, JitEntry *e) {
  if (!e || e->refs <= 0 || --e->refs > 0) return;
  if (atomic_load(&e->state) == JE_READY && e->counted) lru_append(j, e);
}

void jit_release(Jit *j, JitEntry *const *entries, size_t n) {
  if (!j || !entries) return;
  pthread_mutex_lock(&j->lock);
  for (size_t i = 0; i < n; i++) drop(j, entries[i]);
  evict(j);
  pthread_mutex_unlock(&j->lock);
}

/* Does kernel kk go through the object cache? Not an extern kernel (its code holds a
 * function's address in this process), nor the warm-up (it must run LLVM's code
 * generator), nor a dump's compile (it wants the IR and assembly). */
static bool cacheable(const Jit *j, const KnKernel *kk) {
  return j->oc && kk->ok && kk->kind != KK_EXTERN && !warming;
}

/* Entry e's code from the object cache, published: false if the cache has none (or none
 * that links). The caller holds no lock. */
static bool load(Jit *j, JitEntry *e) {
  double t0 = ir_now_us() / 1e3;
  size_t n;
  void *obj = oc_load(j->oc, e->key, &n);
  e->probed = true; /* once: a miss is not looked up again (the compile writes it) */
  if (!obj) return false;
  char name[48];
  snprintf(name, sizeof name, "dvm_k");
  for (int i = 0; i < 16; i++) snprintf(name + 5 + 2 * i, 3, "%02x", e->key[i]);
  LLVMMemoryBufferRef mb = LLVMCreateMemoryBufferWithMemoryRangeCopy(obj, n, name);
  free(obj);
  KernelFn fn = add_object(j, mb, name, e); /* the LLJIT takes objects from any thread */
  if (!fn) {
    e->why[0] = '\0'; /* passed the checks but does not link: compiled instead */
    return false;
  }
  e->compile_ms = ir_now_us() / 1e3 - t0, e->loaded = true;
  atomic_store(&e->fn, fn);
  atomic_store(&e->state, JE_READY);
  return true;
}

/* Compile the lowered kernel kk into entry e (the caller holds no lock): from the object
 * cache when it has the key, else through LLVM (and into the cache). */
static void compile(Jit *j, const KnKernel *kk, JitEntry *e, bool keep_text) {
  if (!kk->ok) {
    snprintf(e->why, sizeof e->why, "%s", kk->why);
    atomic_store(&e->state, JE_UNSUPPORTED);
    return;
  }
  double t0 = ir_now_us() / 1e3;
  char name[48];
  snprintf(name, sizeof name, "dvm_k");
  for (int i = 0; i < 16; i++) snprintf(name + 5 + 2 * i, 3, "%02x", e->key[i]);
  bool cached = cacheable(j, kk) && !keep_text;
  if (cached && !e->probed && load(j, e)) return;
  LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
  LLVMContextRef C = LLVMOrcThreadSafeContextGetContext(tsc);
  LLVMModuleRef M = LLVMModuleCreateWithNameInContext(name, C);
  pthread_mutex_lock(&j->compile_lock);
  LLVMSetTarget(M, j->triple);
  LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(j->tm);
  LLVMSetModuleDataLayout(M, dl);
  LLVMDisposeTargetData(dl);
  bool emitted = jit_emit(kk, C, M, name, j->W, j->mvec);
  char *verr = NULL;
  if (!emitted || LLVMVerifyModule(M, LLVMReturnStatusAction, &verr)) {
    if (!emitted) snprintf(e->why, sizeof e->why, "internal: a lowered program reads a value before evaluating it");
    else snprintf(e->why, sizeof e->why, "internal: emitted IR does not verify: %.200s", verr);
    LLVMDisposeMessage(verr);
    LLVMDisposeModule(M);
    LLVMOrcDisposeThreadSafeContext(tsc);
    pthread_mutex_unlock(&j->compile_lock);
    atomic_store(&e->state, JE_FAILED);
    return;
  }
  LLVMDisposeMessage(verr);
  LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
  LLVMErrorRef perr = LLVMRunPasses(M, "default<O2>", j->tm, opts);
  LLVMDisposePassBuilderOptions(opts);
  if (failed(perr, e->why, sizeof e->why)) {
    LLVMDisposeModule(M);
    LLVMOrcDisposeThreadSafeContext(tsc);
    pthread_mutex_unlock(&j->compile_lock);
    atomic_store(&e->state, JE_FAILED);
    return;
  }
  if (keep_text) {
    e->ir = LLVMPrintModuleToString(M);
    LLVMModuleRef copy = LLVMCloneModule(M);
    LLVMMemoryBufferRef mb;
    char *aerr = NULL;
    if (!LLVMTargetMachineEmitToMemoryBuffer(j->tm, copy, LLVMAssemblyFile, &aerr, &mb)) {
      size_t n = LLVMGetBufferSize(mb);
      if ((e->asm_text = malloc(n + 1))) memcpy(e->asm_text, LLVMGetBufferStart(mb), n), e->asm_text[n] = 0;
      LLVMDisposeMemoryBuffer(mb);
    } else {
      LLVMDisposeMessage(aerr);
    }
    LLVMDisposeModule(copy);
  }
  /* one path for fresh and cached code: the module becomes an object, the object code */
  LLVMMemoryBufferRef mb = NULL;
  char *oerr = NULL;
  bool emitted_obj = !LLVMTargetMachineEmitToMemoryBuffer(j->tm, M, LLVMObjectFile, &oerr, &mb);
  LLVMDisposeModule(M);
  LLVMOrcDisposeThreadSafeContext(tsc);
  if (!emitted_obj) {
    snprintf(e->why, sizeof e->why, "internal: no object code: %.200s", oerr ? oerr : "");
    LLVMDisposeMessage(oerr);
    pthread_mutex_unlock(&j->compile_lock);
    atomic_store(&e->state, JE_FAILED);
    return;
  }
  pthread_mutex_unlock(&j->compile_lock); /* the target machine is done with */
  if (cached) oc_store(j->oc, e->key, LLVMGetBufferStart(mb), LLVMGetBufferSize(mb));
  KernelFn fn = add_object(j, mb, name, e);
  e->compile_ms = ir_now_us() / 1e3 - t0;
  if (!fn) {
    atomic_store(&e->state, JE_FAILED);
    return;
  }
  atomic_store(&e->fn, fn);
  atomic_store(&e->state, JE_READY);
}

/* The entry for a key, made if absent (lock held). */
static JitEntry *entry(Jit *j, const uint8_t key[16]) {
  uint32_t b = bucket(key);
  JitEntry *e = j->table[b];
  while (e && memcmp(e->key, key, 16)) e = e->next;
  if (!e) {
    if (!(e = calloc(1, sizeof *e))) ir_oom();
    memcpy(e->key, key, 16);
    e->next = j->table[b];
    j->table[b] = e;
  }
  return e;
}

/* The entry for kk, compiled (or loaded) first if needed, with one more reference for
 * the caller (jit_get's); held false: none (the background compiler's: NULL returned, as
 * the entry may be evicted once this call lets go of it). */
/* New entry e loaded from the object cache with the entry claimed (JE_COMPILING, loading)
 * and the lock released meanwhile; JE_READY and counted, or JE_NEW again (a miss: the
 * caller compiles it or queues it). Lock held on entry and return. A kernel that misses
 * counts when it is compiled. */
static void claimed_load(Jit *j, JitEntry *e) {
  atomic_store(&e->state, JE_COMPILING);
  e->loading = true;
  pthread_mutex_unlock(&j->lock);
  bool got = load(j, e);
  pthread_mutex_lock(&j->lock);
  e->loading = false;
  if (got) j->stats.misses += !warming, account(j, e);
  else atomic_store(&e->state, JE_NEW);
  pthread_cond_broadcast(&j->changed);
}

/* get's return (lock held, released here): e kept by the caller, or let go. */
static JitEntry *finish(Jit *j, JitEntry *e, bool held) {
  if (!held) drop(j, e), evict(j), e = NULL;
  pthread_mutex_unlock(&j->lock);
  return e;
}

static JitEntry *get(Jit *j, const KnKernel *kk, bool keep_text, bool held) {
  pthread_mutex_lock(&j->lock);
  JitEntry *e = entry(j, kk->key);
  hold(j, e); /* held through this call: not evicted under it */
  for (;;) {
    while (atomic_load(&e->state) == JE_COMPILING) pthread_cond_wait(&j->changed, &j->lock);
    if (atomic_load(&e->state) != JE_NEW) {
      j->stats.hits += !warming;
      return finish(j, e, held);
    }
    if (atomic_load(&warmed) || warming || !kk->ok) break;
    /* LLVM has not run in this process: the object cache first, then the warm-up, each
       with the entry unclaimed (the warm-up's own kernel may have this very key) */
    if (!keep_text && !e->probed && cacheable(j, kk)) {
      claimed_load(j, e);
      continue;
    }
    pthread_mutex_unlock(&j->lock);
    ensure_warm(j);
    pthread_mutex_lock(&j->lock);
  }
  atomic_store(&e->state, JE_COMPILING);
  j->stats.misses += !warming;
  pthread_mutex_unlock(&j->lock);
  compile(j, kk, e, keep_text);
  pthread_mutex_lock(&j->lock);
  if (atomic_load(&e->state) == JE_READY && !e->loaded && !warming)
    j->stats.compiles++, j->stats.compile_ms += e->compile_ms;
  if (atomic_load(&e->state) == JE_UNSUPPORTED) j->stats.unsupported += !warming;
  account(j, e);
  pthread_cond_broadcast(&j->changed);
  return finish(j, e, held);
}

JitEntry *jit_get(Jit *j, const KnKernel *kk, bool keep_text) { return get(j, kk, keep_text, true); }

void jit_stats(Jit *j, JitStats *out) {
  pthread_mutex_lock(&j->lock);
  *out = j->stats;
  out->resident = (int64_t)j->resident;
  pthread_mutex_unlock(&j->lock);
  ObjCacheStats o;
  oc_stats(j->oc, &o);
  out->disk_hits = o.hits, out->disk_misses = o.misses, out->disk_writes = o.writes, out->disk_rejects = o.rejects;
}

/* ---- the background compiler ----------------------------------------------------------- */

/* The background compiler. It runs at the process's own priority: where runs keep every
 * core busy (a server under steady load, or a first run on every pool thread), it takes
 * its fair share of a core, so native code arrives in a bounded multiple of its idle time
 * and the runs lose less than a core meanwhile. A lower priority spares the runs but
 * delays native code more the more runners there are, so a loaded server would stay on
 * bytecode (bench/tierup_load measures both; bench/RESULTS.md). */
static void *compile_thread(void *arg) {
  Jit *j = arg;
  pthread_mutex_lock(&j->lock);
  for (;;) {
    while (!j->qlen && !j->stopping) pthread_cond_wait(&j->work, &j->lock);
    if (j->stopping) break;
    struct Request r = j->queue[j->qhead];
    j->qhead = (j->qhead + 1) % j->qcap;
    j->qlen--;
    j->busy_owner = r.owner;
    pthread_mutex_unlock(&j->lock);
    get(j, r.kk, false, false); /* compiles, or waits for whoever does; the model holds it */
    static atomic_uint compiles; /* again after the process's 1st, 2nd, 4th, 8th... request */
    unsigned c = atomic_fetch_add(&compiles, 1) + 1;
    if (!(c & (c - 1))) atexit(stop_all);
    pthread_mutex_lock(&j->lock);
    j->busy_owner = NULL;
    pthread_cond_broadcast(&j->changed);
  }
  pthread_mutex_unlock(&j->lock);
  return NULL;
}

JitEntry *jit_request(Jit *j, const KnKernel *kk, const void *owner) {
  pthread_mutex_lock(&j->lock);
  JitEntry *e = entry(j, kk->key);
  hold(j, e); /* the owner's, until jit_release */
  /* another thread loading it from disk: its outcome decides (a failed load leaves it to be
     queued, and that thread's owner may go before the compiler takes its request) */
  while (atomic_load(&e->state) == JE_COMPILING && e->loading) pthread_cond_wait(&j->changed, &j->lock);
  /* on disk: loaded here and now (a fraction of a millisecond), so the model's first run is
     native; else compiled in the background as below */
  if (atomic_load(&e->state) == JE_NEW && !e->probed && cacheable(j, kk)) claimed_load(j, e);
  if (atomic_load(&e->state) == JE_NEW && kk->ok && !atomic_load(&warmed)) { /* LLVM will compile it */
    pthread_mutex_unlock(&j->lock);
    ensure_warm(j);
    pthread_mutex_lock(&j->lock);
  }
  if (atomic_load(&e->state) == JE_NEW) {
    /* LLVM gets 8 MB of stack, as clang gives its threads */
    if (!j->running && !j->stopping && !atomic_load(&exiting) &&
        !ir_thread_start(&j->thread, compile_thread, j, 8 << 20))
      j->running = true;
    if (!j->running) { /* no thread: the kernel stays on the reference path, nothing queued */
      pthread_mutex_unlock(&j->lock);
      return e;
    }
    if (j->qlen == j->qcap) { /* grow the ring, keeping FIFO order */
      size_t cap = j->qcap ? 2 * j->qcap : 16;
      struct Request *q = malloc(cap * sizeof *q);
      if (!q) ir_oom();
      for (size_t i = 0; i < j->qlen; i++) q[i] = j->queue[(j->qhead + i) % j->qcap];
      free(j->queue);
      j->queue = q, j->qcap = cap, j->qhead = 0;
    }
    j->queue[(j->qhead + j->qlen++) % j->qcap] = (struct Request){kk, owner};
    pthread_cond_signal(&j->work);
  }
  pthread_mutex_unlock(&j->lock);
  return e;
}

/* Is any request of owner queued (lock held)? */
static bool queued(const Jit *j, const void *owner) {
  for (size_t i = 0; i < j->qlen; i++)
    if (j->queue[(j->qhead + i) % j->qcap].owner == owner) return true;
  return false;
}

void jit_cancel(Jit *j, const void *owner) {
  pthread_mutex_lock(&j->lock);
  size_t kept = 0;
  for (size_t i = 0; i < j->qlen; i++) { /* compact the ring without owner's requests */
    struct Request r = j->queue[(j->qhead + i) % j->qcap];
    if (r.owner != owner) j->queue[(j->qhead + kept++) % j->qcap] = r;
  }
  j->qlen = kept;
  while (j->busy_owner == owner) pthread_cond_wait(&j->changed, &j->lock);
  pthread_mutex_unlock(&j->lock);
}

void jit_wait(Jit *j, const void *owner) {
  pthread_mutex_lock(&j->lock);
  while (j->busy_owner == owner || queued(j, owner)) pthread_cond_wait(&j->changed, &j->lock);
  pthread_mutex_unlock(&j->lock);
}
