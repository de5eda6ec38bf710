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
 * Files: llvm.c (LLJIT, target machine, compile a module, cache), codegen.c and the
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
  char why[256];          /* JE_UNSUPPORTED / JE_FAILED: the reason */
  char *ir;               /* the optimized module as text, for dump --stage llvm */
  char *asm_text;         /* its assembly, for dump --stage asm */
  struct JitEntry *next;  /* hash chain */
} JitEntry;

typedef struct Jit Jit;

typedef struct JitStats {
  int64_t hits, misses, compiles, unsupported;
  double compile_ms;
} JitStats;

/* llvm.c */
/* The f32 lanes of the native code (16 on AVX-512). */
int jit_lanes(const Jit *j);
/* Compiles a small kernel with jit_get on the calling thread (the runtime's pipeline). */
typedef void (*JitWarmUp)(Jit *j);
/* A new Jit for the host; NULL with err set if LLVM cannot target it. The process's first
 * Jit calls warm before it returns (llvm.c: Exit), once per process. */
Jit *jit_new(JitWarmUp warm, Err *err);
void jit_free(Jit *j);
/* The cache entry for the lowered kernel kk, compiling it first if needed (blocking:
 * concurrent callers for one key wait for the one compile). Never NULL; the entry's state
 * says whether native code is there. `keep_text` records the IR and assembly when this
 * call compiles (dumps use a Jit of their own). */
JitEntry *jit_get(Jit *j, const KnKernel *kk, bool keep_text);
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
