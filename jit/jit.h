/* jit/jit.h — the map of the jit layer: kernels compiled to native code through the LLVM C
 * API, behind the kernel ABI (kernel/kernel.h), cached by kernel key. What a kernel's
 * loops are, which kernels are covered and how the outer range is split are the kernel
 * layer's decisions; this layer emits and compiles them.
 *
 * A Jit (one per context) owns one long-lived ORC LLJIT, the host target machine, and
 * the kernel cache: one JitEntry per key, compiled at most once however many models and
 * threads ask for it (the first asker compiles, the others wait on the entry). Only files
 * in jit/ include llvm-c.
 *
 * Files: llvm.c (LLJIT, target machine, compile a module to an object, cache), objcache.c
 * (objects kept on disk across processes), codegen.c and the
 * emitter's other parts (a lowered kernel to LLVM IR; their private map is cg.h), extern.c
 * (extern kernels: a direct call of the registered function). */
#ifndef DVM_JIT_H
#define DVM_JIT_H

#include <stdatomic.h>

#include "../kernel/kernel.h"

typedef void (*KernelFn)(void *const *bufs, const int64_t *dims, int64_t begin, int64_t end);

typedef enum JitState {
  JE_NEW,         /* nobody has asked to compile it yet */
  JE_COMPILING,   /* one thread is compiling; others wait */
  JE_READY,       /* fn is native code */
  JE_UNSUPPORTED, /* codegen does not cover this kernel yet: it runs on the reference path */
  JE_FAILED       /* LLVM failed: `why` says how (a bug) */
} JitState;

typedef struct JitEntry {
  uint8_t key[16];
  _Atomic(KernelFn) fn;   /* published last: a non-NULL fn is ready to call */
  _Atomic int state;      /* JitState */
  double compile_ms;
  bool loaded;            /* JE_READY from the object cache, not compiled */
  bool probed;            /* the object cache was asked for it (and had none that loads) */
  bool loading;           /* JE_COMPILING by a load from the object cache (lock) */
  /* the bounded code cache (llvm.c), under the Jit's lock: */
  int refs;               /* the models (and pipelines) that hold it: never evicted above 0 */
  size_t bytes;           /* its object's size, counted in the resident bytes once ready */
  bool counted;           /* ... counted there */
  void *tracker;          /* the ORC resource tracker its code was added under */
  struct JitEntry *lru_prev, *lru_next; /* unreferenced ready entries, least recently released first */
  char why[256];          /* JE_UNSUPPORTED / JE_FAILED: the reason */
  char *ir;               /* the optimized module as text, for dump --stage llvm */
  char *asm_text;         /* its assembly, for dump --stage asm */
  struct JitEntry *next;  /* hash chain */
} JitEntry;

typedef struct Jit Jit;

typedef struct JitStats {
  int64_t hits, misses, compiles, unsupported;
  double compile_ms;
  int64_t disk_hits, disk_misses, disk_writes, disk_rejects; /* the object cache (objcache.c) */
  int64_t evictions;  /* kernels whose code was released to stay under the limit */
  int64_t resident;   /* bytes of native code held (objects' sizes) */
} JitStats;

/* objcache.c: native code kept on disk, one object file per kernel (the file's top says
 * where, how it is checked and when it is refused). */
typedef struct ObjCache ObjCache;
typedef struct ObjCacheStats {
  int64_t hits, misses, writes, rejects;
} ObjCacheStats;
/* The cache for code made for `target` (everything besides the key that the code depends
 * on: triple, CPU, features, LLVM version) by this build of dvm, in `setting`, else
 * DVM_CACHE_DIR, else the default directory; NULL when it is off or refused (with one
 * warning per process saying why). */
ObjCache *oc_open(const char *setting, const char *target);
/* The directory oc_open would use with setting, into out; false when the cache is off. */
bool oc_dir(const char *setting, char *out, size_t n);
/* The kernel files in dir (of every build and target) and their bytes, each removed first
 * if `remove`; -1 if dir cannot be read (a missing one holds 0). */
int64_t oc_scan(const char *dir, bool remove, int64_t *bytes);
void oc_close(ObjCache *c);
/* The object cached for key (malloc'd, *n bytes), or NULL: none, or a file that fails a
 * check (counted, removed). */
void *oc_load(ObjCache *c, const uint8_t key[16], size_t *n);
/* Is file (size bytes) a whole entry of c for key: header and checksum? The one check of a
 * file's contents (oc_load reads the file, then asks). */
bool oc_check(const ObjCache *c, const uint8_t key[16], const uint8_t *file, size_t size);
/* Keep obj for key; a directory that cannot be written warns once and keeps nothing. */
void oc_store(ObjCache *c, const uint8_t key[16], const void *obj, size_t n);
void oc_stats(const ObjCache *c, ObjCacheStats *out);

/* llvm.c */
/* The f32 lanes of the native code (16 on AVX-512). */
int jit_lanes(const Jit *j);
/* Compiles a small kernel with jit_get on the calling thread (the runtime's pipeline). */
typedef void (*JitWarmUp)(Jit *j);
/* A new Jit for the host; NULL with err set if LLVM cannot target it. warm runs once per
 * process, on the caller's thread, before the first kernel LLVM compiles (llvm.c: Exit);
 * a process whose kernels all load from the object cache never runs it. cache_dir: where
 * its object cache lives (oc_open: NULL the default, "off" none). code_limit: the bytes of
 * native code it keeps in memory beyond what models hold (0: no limit; llvm.c, eviction). */
Jit *jit_new(JitWarmUp warm, const char *cache_dir, size_t code_limit, Err *err);
void jit_free(Jit *j);
/* The cache entry for the lowered kernel kk, compiling it first if needed (blocking:
 * concurrent callers for one key wait for the one compile). Never NULL; the entry's state
 * says whether native code is there. `keep_text` records the IR and assembly when this
 * call compiles (dumps use a Jit of their own). */
JitEntry *jit_get(Jit *j, const KnKernel *kk, bool keep_text);
/* The references jit_get and jit_request took for a model (or a pipeline), dropped: an
 * entry no model holds may have its code evicted (and compiled or loaded again when asked
 * for). Call after jit_cancel for the same owner. */
void jit_release(Jit *j, JitEntry *const *entries, size_t n);
void jit_stats(Jit *j, JitStats *out);
/* Tiering (the auto tier): the entry for kernel kk without waiting, and, if nobody has
 * compiled it yet, a request to the background compile thread. `owner` (a model) must
 * call jit_cancel before the lowered kernel it passed goes away. Runs read entry->fn
 * atomically: NULL until native code is ready, then the code, swapped in with no lock. */
JitEntry *jit_request(Jit *j, const KnKernel *kk, const void *owner);
/* Drop owner's pending requests and wait until none of its kernels is being compiled. */
void jit_cancel(Jit *j, const void *owner);
/* Wait until owner has no pending or running requests. */
void jit_wait(Jit *j, const void *owner);
/* The host's name for the cache key and dumps ("znver5+avx512f ..."). */
const char *jit_target(const Jit *j);

#endif /* DVM_JIT_H */
