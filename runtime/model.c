/* runtime/model.c — dvm_model: a compiled, shape-polymorphic graph and its runs.
 *
 * A model owns a private copy of the graph, the params bound to it, the chosen tier and
 * its counters. dvm_model_run binds symbols from the given tensors (runtime/bind.c),
 * then executes. The ref tier runs the unfused graph op by op (runtime/ref.c). The fused
 * tiers run the partition (fusion/) kernel by kernel, each kernel as the best code it has:
 *   llvm  native code, compiled for every kernel before the first run
 *   vm    tile bytecode (vm/vm.h), encoded for every kernel when the model is compiled
 *   auto  bytecode at once, and each kernel's native code requested from the background
 *         compiler; a run reads the entry's fn atomically (no lock) and switches that
 *         kernel to native code as soon as it is published, so no run waits for LLVM
 * A kernel neither tier covers runs on the kernel-level reference path (rt_ref_run_nodes;
 * `dump --stage bytecode|llvm` says why). DVM_JIT=off keeps auto on that path for every
 * kernel (no bytecode, no native code): the differential tests' bit-exact baseline.
 *
 * Threads: runs share nothing mutable but the counters (under `lock`) and the packed
 * copies of params (made once, under `lock`, when the param is set or else by the first
 * run that needs one); params are set before runs start (dvm.h), and setting one
 * replaces its packed copy.
 *
 * Why one file of ~1100 lines (past 800 on purpose): the model's whole life (compile,
 * plans and arenas, packed weights, the run loop over kernels, the public accessors)
 * shares the private dvm_model struct defined here; the pieces with no need of it already
 * live apart (bind.c, ref.c, pool.c). */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../jit/jit.h"
#include "../onnx/onnx.h"
#include "../vm/vm.h"
#include "pool.h"
#include "runtime.h"

enum { ARENAS_KEPT = 4 }; /* free arenas a model keeps for its next runs */
#define ARENA_RESERVE ((size_t)2 << 20) /* touched at compile: see reserve_arena */

struct dvm_model {
  Graph *g;          /* a specialized model's: its declared inputs only */
  Spec *spec;        /* a model specialized on input values (spec.c), else NULL */
  dvm_tier tier;
  int threads;
  Tensor **params;   /* per value id: the bound tensor of a param node, else NULL */
  uint32_t *inputs;  /* input node ids in declaration order */
  uint32_t *pnodes;  /* param node ids in declaration order */
  int ninputs, nparams;
  int64_t nkernels;  /* kernels of the executed partition */
  Partition *part;   /* auto and llvm tiers: the fused partition */
  Jit *jit;          /* llvm tier: the context's */
  Pool *pool;        /* llvm tier: the context's thread pool */
  JitEntry **entry;  /* llvm and auto tiers, per kernel: its cache entry (native code or the reason not) */
  VmCode **vm;       /* vm and auto tiers, per kernel: its bytecode, NULL if the VM declined it */
  KnKernel **low;    /* fused tiers, per kernel: the lowered kernel (the background compiler
                        reads it until jit_cancel) */
  uint32_t *last;    /* fused tiers, per value: last kernel reading it (its own kernel if none
                        does); UINT32_MAX = keep (a graph output) */
  pthread_mutex_t lock;
  dvm_stats stats;
  struct Plan *plans; /* fused tiers: per input binding, most recent first (under lock) */
  int nplans;
  Tensor **adopted;   /* param values the model owns (dvm_model_load_onnx), per value id */
  uint32_t nadopted;
  size_t *packed_size;      /* per value id: the bytes of its packed copy (under lock) */
  _Atomic(float *) *packed; /* per value id: a param weight packed for mix kernels
                               (kn_pack), made by set_param (else at its first use) */
  void *arena[ARENAS_KEPT];  /* arenas not in use (under lock), any plan's ... */
  size_t arena_size[ARENAS_KEPT]; /* ... of these sizes */
  int narenas;
};

/* ---- plans: what a binding costs, worked out once ------------------------------------------
 *
 * A Plan is kept per input binding (the dtype and shape of every input, in declaration
 * order; params are fixed per model): the concrete shapes of every value (the Binding,
 * whose constraints were checked when it was made) and a memory plan, an arena offset for
 * every intermediate (a kernel's output that only later kernels read) from its liveness:
 * values live from their dispatch to the end of the dispatch of their last reader, and
 * values whose lives overlap get disjoint ranges. A run with a known binding costs one
 * lookup; it takes an arena from the model's free ones, the smallest that is large enough
 * whichever binding it served (runs on other threads take others), so intermediates cost
 * no allocation and no page faults. Intermediates of kernels that
 * run on the reference path are still allocated there. */
enum { PLAN_MAX = 16, PLAN_KEY_MAX = 256 };

typedef struct Plan {
  struct Plan *next;
  int64_t key[PLAN_KEY_MAX];
  uint32_t nkey;
  Binding b;
  size_t *aoff;         /* per value: arena offset, SIZE_MAX if not in the arena */
  struct Split {        /* per kernel: how its native code splits (kn_col_blocks) */
    size_t off;         /* its scratch: after the intermediates, disjoint within a
                           dispatch; SIZE_MAX if it does not split */
    int64_t blocks, finish;
  } *split;
  size_t arena_bytes;
  int users;            /* runs using it now: it is not evicted while > 0 */
} Plan;

static void plan_free(Plan *pl) {
  if (!pl) return;
  rt_binding_free(&pl->b);
  free(pl->aoff);
  free(pl->split);
  free(pl);
}

/* The key of the given inputs: per input, dtype, rank and dims, and the elements of one
 * declared with `values` (they bind symbols too); false if too long. */
static bool plan_key(const dvm_model *m, Tensor *const *given, int64_t *key, uint32_t *n) {
  *n = 0;
  for (int i = 0; i < m->ninputs; i++) {
    const Tensor *t = given[m->inputs[i]];
    if (!t) return false;
    const Attr *a = ir_attr(m->g, m->inputs[i], AK_VALUES);
    int64_t vals = a && t->data ? t->numel : 0;
    if (*n + 2 + (uint32_t)t->rank + (uint64_t)vals > PLAN_KEY_MAX) return false;
    key[(*n)++] = t->dtype;
    key[(*n)++] = t->rank;
    for (int k = 0; k < t->rank; k++) key[(*n)++] = t->shape[k];
    for (int64_t k = 0; k < vals; k++) key[(*n)++] = rt_get_i(t->data, t->dtype, k);
  }
  return true;
}

/* Output u of kernel i lives in a run's arena: a later kernel reads it and it is not a
 * graph output (those are kept to the end: last = UINT32_MAX). */
static bool in_arena(const dvm_model *m, uint32_t i, uint32_t u) { return m->last[u] != UINT32_MAX && m->last[u] > i; }

static bool kernel_dims(const dvm_model *m, const Binding *b, const Kernel *k, int64_t *dims);

/* The scratch of the kernels whose native code splits (kn_col_blocks) under this
 * binding, after the intermediates: the kernels of one dispatch run at once, so theirs are
 * disjoint; dispatches reuse the same bytes. */
static bool plan_scratch(const dvm_model *m, Plan *pl) {
  const Partition *p = m->part;
  uint32_t nk = p->kernels.n;
  if (!(pl->split = malloc((nk + 1) * sizeof *pl->split))) return false;
  size_t base = (pl->arena_bytes + 63) & ~(size_t)63, used = 0, most = 0;
  for (uint32_t i = 0; i < nk; i++) {
    const Kernel *k = &p->kernels.v[i];
    struct Split *sp = &pl->split[i];
    if (i && k->dispatch != p->kernels.v[i - 1].dispatch) used = 0;
    *sp = (struct Split){SIZE_MAX, 1, 0};
    int64_t dims[64];
    size_t bytes = 0;
    if (!m->entry || k->ndims >= 64 || !kernel_dims(m, &pl->b, k, dims)) continue;
    sp->blocks = kn_col_blocks(m->low[i], dims, jit_lanes(m->jit), rt_pool_threads(m->pool), &sp->finish, &bytes);
    if (sp->blocks < 2) continue; /* 1, no combine items, no scratch */
    sp->off = base + used;
    used += (bytes + 63) & ~(size_t)63;
    if (used > most) most = used;
  }
  if (most) pl->arena_bytes = base + most;
  return true;
}

/* The arena offsets of the intermediates (see above). */
static bool plan_memory(const dvm_model *m, Plan *pl) {
  const Graph *g = m->g;
  const Partition *p = m->part;
  uint32_t nv = g->nodes.n, nk = p->kernels.n;
  if (!(pl->aoff = malloc(nv * sizeof *pl->aoff))) return false;
  for (uint32_t v = 0; v < nv; v++) pl->aoff[v] = SIZE_MAX;
  /* per kernel: the first and one past the last kernel of its dispatch */
  uint32_t *from = malloc(2 * (nk + 1) * sizeof *from), *to = from ? from + nk + 1 : NULL;
  uint32_t *order = malloc((nv + 1) * sizeof *order);
  if (!from || !order) return free(from), free(order), false;
  for (uint32_t i = 0, j; i < nk; i = j) {
    for (j = i; j < nk && p->kernels.v[j].dispatch == p->kernels.v[i].dispatch; j++) {}
    for (uint32_t q = i; q < j; q++) from[q] = i, to[q] = j;
  }
  uint32_t n = 0;
  for (uint32_t i = 0; i < nk; i++) {
    const Kernel *k = &p->kernels.v[i];
    for (uint32_t j = 0; j < k->noutputs; j++) {
      uint32_t u = fu_outputs(p, k)[j];
      if (in_arena(m, i, u)) order[n++] = u;
    }
  }
  size_t total = 0;
  for (uint32_t a = 0; a < n; a++) { /* first fit among the values placed so far */
    uint32_t u = order[a], ku = p->kernel_of[u];
    size_t bytes = ((size_t)pl->b.numel[u] * ir_dtype_size((DType)ir_node(g, u)->dtype) + 63) & ~(size_t)63;
    uint32_t lo = from[ku], hi = to[m->last[u]];
    size_t off = 0;
    for (bool moved = true; moved;) {
      moved = false;
      for (uint32_t b = 0; b < a; b++) {
        uint32_t w = order[b], kw = p->kernel_of[w];
        size_t wbytes = ((size_t)pl->b.numel[w] * ir_dtype_size((DType)ir_node(g, w)->dtype) + 63) & ~(size_t)63;
        bool live = from[kw] < hi && lo < to[m->last[w]];
        if (live && off < pl->aoff[w] + wbytes && pl->aoff[w] < off + bytes) off = pl->aoff[w] + wbytes, moved = true;
      }
    }
    pl->aoff[u] = off;
    if (off + bytes > total) total = off + bytes;
  }
  pl->arena_bytes = total;
  free(from);
  free(order);
  return plan_scratch(m, pl);
}

/* Does a max, min or argmax fold over zero elements at binding b? It has no identity:
 * an error, as the reference executor reports it (the kernels would return -inf). */
static dvm_status empty_folds(const Graph *g, const Binding *b, Err *err) {
  for (uint32_t v = 0; v < g->nodes.n; v++) {
    const Node *n = ir_node(g, v);
    if (n->op != OP_REDUCE_MAX && n->op != OP_REDUCE_MIN && n->op != OP_ARGMAX) continue;
    uint32_t x = ir_operand(g, v, 0);
    int r = ir_node(g, x)->rank;
    const int64_t *xs = b->dims + b->off[x];
    bool red[DVM_MAX_RANK] = {false};
    const Attr *a = ir_attr(g, v, n->op == OP_ARGMAX ? AK_AXIS : AK_AXES);
    if (n->op == OP_ARGMAX) {
      int ax = ir_axis(a ? a->i : 0, r);
      if (ax >= 0) red[ax] = true;
    } else {
      for (int d = 0; d < r; d++) red[d] = !a;
      for (uint32_t k = 0; a && k < a->n; k++) {
        int ax = ir_axis(g->lists.v[a->off + k], r);
        if (ax >= 0) red[ax] = true;
      }
    }
    int64_t count = 1;
    for (int d = 0; d < r; d++) count *= red[d] ? xs[d] : 1;
    if (count == 0 && b->numel[v] > 0) {
      const char *name = ir_s(g, n->name);
      return ir_errl(err, DVM_ERR_RUNTIME, g->file, n->line, "%s%s%s: %s", name, name[0] ? " = " : "",
                     ir_ops[n->op].name,
                     n->op == OP_ARGMAX ? "argmax over an empty axis" : "reduction over zero elements has no identity");
    }
  }
  return DVM_OK;
}

/* The plan for the given inputs: found (one lookup), or made (binding and memory plan)
 * and kept. Its users count is raised; plan_release lowers it. */
static dvm_status plan_get(dvm_model *m, Tensor **given, Plan **out, Err *err) {
  int64_t key[PLAN_KEY_MAX];
  uint32_t nkey;
  *out = NULL;
  bool keyed = plan_key(m, given, key, &nkey);
  if (keyed) {
    pthread_mutex_lock(&m->lock);
    for (Plan **at = &m->plans, *pl; (pl = *at); at = &pl->next)
      if (pl->nkey == nkey && !memcmp(pl->key, key, nkey * sizeof *key)) {
        *at = pl->next, pl->next = m->plans, m->plans = pl; /* most recent first */
        pl->users++;
        m->stats.plan_hits++;
        pthread_mutex_unlock(&m->lock);
        *out = pl;
        return DVM_OK;
      }
    pthread_mutex_unlock(&m->lock);
  }
  Plan *pl = calloc(1, sizeof *pl);
  if (!pl) return ir_err(err, DVM_ERR_NOMEM, "out of memory");
  dvm_status st = rt_bind(m->g, given, NULL, &pl->b, err);
  if (!st) st = empty_folds(m->g, &pl->b, err);
  if (st) return plan_free(pl), st;
  if (!plan_memory(m, pl)) return plan_free(pl), ir_err(err, DVM_ERR_NOMEM, "out of memory");
  pl->users = 1;
  memcpy(pl->key, key, nkey * sizeof *key);
  pl->nkey = nkey;
  pthread_mutex_lock(&m->lock);
  m->stats.plan_misses++;
  if (keyed) { /* kept, most recent first; the oldest unused plan goes beyond PLAN_MAX */
    pl->next = m->plans, m->plans = pl, m->nplans++;
    if (m->nplans > PLAN_MAX) {
      Plan **victim = NULL;
      for (Plan **at = &m->plans; *at; at = &(*at)->next)
        if (!(*at)->users) victim = at;
      if (victim) {
        Plan *v = *victim;
        *victim = v->next, m->nplans--;
        plan_free(v);
      }
    }
  } else {
    pl->nkey = UINT32_MAX; /* not kept: freed by plan_release */
  }
  pthread_mutex_unlock(&m->lock);
  *out = pl;
  return DVM_OK;
}

/* An arena of at least `bytes` for one run (NULL if it needs none): the smallest free one
 * that is large enough, of any plan, else a new one (rt_alloc: whole 2 MB pages from
 * 1 MB). So a run with a new binding usually finds memory already touched: a first touch
 * costs a page fault per page (10–20 µs per 4 KB page here). */
static void *arena_take(dvm_model *m, size_t bytes, size_t *size, Err *err, dvm_status *st) {
  *st = DVM_OK;
  *size = 0;
  if (!bytes) return NULL;
  void *a = NULL;
  pthread_mutex_lock(&m->lock);
  int best = -1;
  for (int i = 0; i < m->narenas; i++)
    if (m->arena_size[i] >= bytes && (best < 0 || m->arena_size[i] < m->arena_size[best])) best = i;
  if (best >= 0) {
    a = m->arena[best], *size = m->arena_size[best];
    m->narenas--;
    m->arena[best] = m->arena[m->narenas], m->arena_size[best] = m->arena_size[m->narenas];
  }
  pthread_mutex_unlock(&m->lock);
  if (a) return a;
  *size = rt_alloc_size(bytes);
  if (!(a = rt_alloc(bytes)))
    *st = ir_err(err, DVM_ERR_NOMEM, "out of memory allocating a %zu-byte arena", bytes);
  return a;
}

/* The run is done with plan pl and its arena (of `size` bytes): the arena is kept for
 * later runs unless ARENAS_KEPT larger ones are (then the smallest is freed). */
static void plan_release(dvm_model *m, Plan *pl, void *arena, size_t size) {
  if (!pl) return;
  pthread_mutex_lock(&m->lock);
  if (arena && m->narenas < ARENAS_KEPT) {
    m->arena[m->narenas] = arena, m->arena_size[m->narenas++] = size, arena = NULL;
  } else if (arena) {
    int small = 0;
    for (int i = 1; i < m->narenas; i++)
      if (m->arena_size[i] < m->arena_size[small]) small = i;
    if (m->arena_size[small] < size) {
      void *old = m->arena[small];
      m->arena[small] = arena, m->arena_size[small] = size, arena = old;
    }
  }
  pl->users--;
  bool drop = pl->nkey == UINT32_MAX;
  pthread_mutex_unlock(&m->lock);
  free(arena);
  if (drop) plan_free(pl);
}

/* A model whose kernels pass intermediates gets its first free arena now, off the request
 * path: ARENA_RESERVE bytes (one 2 MB page of rt_alloc's, advised huge) written once, so
 * the first runs whose intermediates fit (W5 up to N of about 100) fault in no arena page.
 * Here a fresh 4 KB page costs 10-20 us to fault: W5's first run at N = 16 took about 80
 * such faults for its 320 KB of intermediates. The same rule as the plans' (in_arena)
 * says whether there are any. No reserve if the allocation fails. */
static void reserve_arena(dvm_model *m) {
  const Partition *p = m->part;
  bool inter = false;
  for (uint32_t i = 0; i < p->kernels.n && !inter; i++)
    for (uint32_t j = 0; j < p->kernels.v[i].noutputs && !inter; j++)
      inter = in_arena(m, i, fu_outputs(p, &p->kernels.v[i])[j]);
  void *a = inter ? rt_alloc(ARENA_RESERVE) : NULL;
  if (!a) return;
  memset(a, 0, ARENA_RESERVE);
  m->arena[0] = a, m->arena_size[0] = ARENA_RESERVE, m->narenas = 1;
}

static dvm_status compile(dvm_context *ctx, const dvm_graph *dg, const dvm_compile_options *opt,
                          dvm_model **out) {
  Err err = {0};
  *out = NULL;
  if (!dg) return ir_err(&err, DVM_ERR_USAGE, "dvm_model_compile: no graph"), rt_fail(&err);
  dvm_tier tier = opt ? opt->tier : DVM_TIER_AUTO;
  dvm_model *m = calloc(1, sizeof *m);
  if (!m || !(m->g = ir_graph_clone(rt_graph_ir(dg)))) goto oom;
  Graph *g = m->g;
  m->tier = tier;
  m->threads = opt ? opt->threads : 0;
  /* vm, auto: encode every kernel now (microseconds each). llvm: compile every kernel
     before the first run. auto: also request them from the background compiler; if LLVM
     cannot target the host, auto stays on bytecode. DVM_JIT=off: auto runs every
     kernel on the reference path. */
  const char *jit_env = getenv("DVM_JIT");
  bool jit_off = jit_env && !strcmp(jit_env, "off");
  bool bytecode = tier == DVM_TIER_VM || (tier == DVM_TIER_AUTO && !jit_off);
  Pipeline pl = {.ctx = ctx, .dump = -1, .unfused = tier == DVM_TIER_REF, .owner = m,
                 .background = tier == DVM_TIER_AUTO};
  if (bytecode && !(pl.encode = strcmp(vm_isa(NULL), "none") != 0) && tier == DVM_TIER_VM) {
    dvm_model_destroy(m);
    return ir_err(&err, DVM_ERR_UNSUPPORTED, "the bytecode tier does not run on this host"), rt_fail(&err);
  }
  if (tier == DVM_TIER_LLVM || tier == DVM_TIER_AUTO) {
    Err jerr = {0};
    if (!(pl.jit = rt_context_jit(ctx, &jerr)) && tier == DVM_TIER_LLVM) {
      dvm_model_destroy(m);
      return rt_fail(&jerr);
    }
  }
  if (rt_compile(&pl, g, &err)) { /* fails before it requests native code */
    rt_pipeline_free(&pl);
    dvm_model_destroy(m);
    return rt_fail(&err);
  }
  m->part = pl.part, m->last = pl.last, m->vm = pl.vm, m->entry = pl.entry, m->low = pl.low;
  m->jit = pl.entry ? pl.jit : NULL;
  m->stats.vm_encodes = pl.vm_encodes, m->stats.encode_us = pl.encode_us, m->stats.lower_us = pl.lower_us;
  if (bytecode || m->jit) m->pool = rt_context_pool(ctx, m->threads);
  m->params = calloc(g->nodes.n, sizeof *m->params);
  m->packed = calloc(g->nodes.n, sizeof *m->packed);
  m->packed_size = calloc(g->nodes.n, sizeof *m->packed_size);
  m->inputs = malloc((g->decls.n + 1) * sizeof *m->inputs);
  m->pnodes = malloc((g->decls.n + 1) * sizeof *m->pnodes);
  if (!m->params || !m->packed || !m->packed_size || !m->inputs || !m->pnodes) goto oom;
  for (uint32_t i = 0; i < g->decls.n; i++) {
    uint32_t v = g->decls.v[i];
    if (ir_node(g, v)->op == OP_INPUT) m->inputs[m->ninputs++] = v;
    else m->pnodes[m->nparams++] = v;
  }
  if (m->part) {
    m->nkernels = m->part->kernels.n;
  } else {
    for (uint32_t v = 0; v < g->nodes.n; v++)
      if (ir_ops[ir_node(g, v)->op].kind != OPK_SOURCE) m->nkernels++;
  }
  pthread_mutex_init(&m->lock, NULL);
  if (m->entry || m->vm) reserve_arena(m); /* the tiers that run kernels in an arena */
  *out = m;
  return rt_ok();
oom:
  dvm_model_destroy(m);
  return ir_err(&err, DVM_ERR_NOMEM, "out of memory"), rt_fail(&err);
}

typedef struct CompileArgs {
  dvm_context *ctx;
  const dvm_graph *dg;
  const dvm_compile_options *opt;
  dvm_model **out;
} CompileArgs;

static dvm_status compile_args(void *p) {
  CompileArgs *a = p;
  return compile(a->ctx, a->dg, a->opt, a->out);
}

/* LLVM runs on the caller's thread when a model compiles in the llvm tier (and for the
 * process's first compile in auto, jit/llvm.c's warm-up): on a thread with less than
 * COMPILE_STACK left, the compile runs on a thread of dvm's own with LLVM_STACK while the
 * caller waits (W5 in the llvm tier overflowed a 64 KB stack inside LLVM's scalar
 * evolution). The bytecode and reference tiers need no more than a run. */
enum { COMPILE_STACK = 1 << 20, LLVM_STACK = 8 << 20 };

dvm_status dvm_model_compile(dvm_context *ctx, const dvm_graph *dg, const dvm_compile_options *opt,
                             dvm_model **out) {
  dvm_tier tier = opt ? opt->tier : DVM_TIER_AUTO;
  rt_touch_stack(); /* this thread likely runs the model: its first run faults no stack */
  size_t left = ir_stack_left();
  bool llvm_here = tier == DVM_TIER_LLVM || tier == DVM_TIER_AUTO;
  if (left == SIZE_MAX || left >= COMPILE_STACK || !llvm_here) return compile(ctx, dg, opt, out);
  CompileArgs a = {ctx, dg, opt, out};
  return rt_call_with_stack(compile_args, &a, LLVM_STACK);
}

void dvm_model_destroy(dvm_model *m) {
  if (!m) return;
  if (m->spec) {
    rt_spec_free(m->spec);
    ir_graph_free(m->g);
    free(m->inputs);
    free(m);
    return;
  }
  if (m->jit) { /* its partition must outlive any compile of it; then its code may go */
    jit_cancel(m->jit, m);
    jit_release(m->jit, m->entry, m->entry ? m->part->kernels.n : 0);
  }
  if (m->g) pthread_mutex_destroy(&m->lock);
  for (Plan *pl = m->plans, *next; pl; pl = next) next = pl->next, plan_free(pl);
  for (uint32_t i = 0; i < m->nadopted; i++) rt_tensor_free(m->adopted[i]);
  free(m->adopted);
  for (uint32_t i = 0; m->vm && i < m->part->kernels.n; i++) vm_free(m->vm[i]);
  free(m->vm);
  kn_lower_all_free(m->low);
  fu_free(m->part);
  free(m->entry);
  free(m->last);
  free(m->params);
  for (uint32_t v = 0; m->packed && v < m->g->nodes.n; v++) free(atomic_load(&m->packed[v]));
  free(m->packed);
  free(m->packed_size);
  for (int i = 0; i < m->narenas; i++) free(m->arena[i]);
  ir_graph_free(m->g);
  free(m->inputs);
  free(m->pnodes);
  free(m);
}

int dvm_model_num_inputs(const dvm_model *m) { return m->ninputs; }
int dvm_model_num_params(const dvm_model *m) { return m->nparams; }
int dvm_model_num_outputs(const dvm_model *m) {
  return m->spec ? rt_spec_num_outputs(m->spec) : (int)m->g->outputs.n;
}

static const char *value_name(const dvm_model *m, uint32_t v) { return ir_s(m->g, ir_node(m->g, v)->name); }

const char *dvm_model_input_name(const dvm_model *m, int i) {
  return i >= 0 && i < m->ninputs ? value_name(m, m->inputs[i]) : NULL;
}
const char *dvm_model_param_name(const dvm_model *m, int i) {
  return i >= 0 && i < m->nparams ? value_name(m, m->pnodes[i]) : NULL;
}
const char *dvm_model_output_name(const dvm_model *m, int i) {
  if (m->spec) return rt_spec_output_name(m->spec, i);
  return i >= 0 && i < (int)m->g->outputs.n ? value_name(m, m->g->outputs.v[i]) : NULL;
}

/* Free representatives a user can name (fresh symbols have an '@' no name can hold). */
static bool user_free(const Graph *g, uint32_t s) {
  return ir_sym_rep(g, s) == s && g->syms.v[s].bound == DIM_NONE &&
         !strchr(ir_s(g, g->syms.v[s].name), '@');
}

int dvm_model_num_symbols(const dvm_model *m) {
  int n = 0;
  for (uint32_t s = 0; s < m->g->syms.n; s++) n += user_free(m->g, s);
  return n;
}

const char *dvm_model_symbol_name(const dvm_model *m, int i) {
  for (uint32_t s = 0; s < m->g->syms.n; s++)
    if (user_free(m->g, s) && i-- == 0) return ir_s(m->g, m->g->syms.v[s].name);
  return NULL;
}

int dvm_model_value_dtype(const dvm_model *m, const char *name) {
  int64_t v = name ? ir_find(m->g, name, strlen(name)) : -1;
  if (m->spec && v < 0) return rt_spec_output_dtype(m->spec, name);
  return v < 0 ? -1 : ir_node(m->g, (uint32_t)v)->dtype;
}

static float *packed_param(const dvm_model *mc, uint32_t v, const Tensor *t, int lanes, Err *err);
static int pack_lanes(const dvm_model *m);
static bool vm_reads_packed(const dvm_model *m, const VmCode *vm);

/* Param v, just bound to t, packed now if a mix kernel reads it packed (kn_packed_input):
 * binding params is the model's set-up, so no run pays for the copy (W5's 32 MB of
 * weights: about 5 ms of page faults and copying, five times its run at N = 1). A copy
 * that cannot be made here (no memory; a tensor the run will reject) is left to the first
 * run that needs it, which reports the error. */
static void prepack(dvm_model *m, uint32_t v, const Tensor *t) {
  const Partition *p = m->part;
  if (!p || !t || t->dtype != DT_F32 || t->rank != 2 || !t->data) return;
  for (uint32_t i = 0; i < p->kernels.n; i++) {
    const Kernel *k = &p->kernels.v[i];
    int pj = kn_packed_input(m->low[i]);
    if (pj < 0 || fu_inputs(p, k)[pj] != v || !(m->entry || vm_reads_packed(m, m->vm ? m->vm[i] : NULL))) continue;
    Err err = {0};
    packed_param(m, v, t, pack_lanes(m), &err);
    return;
  }
}

dvm_status dvm_model_set_param(dvm_model *m, const char *name, dvm_tensor *t) {
  Err err = {0};
  int64_t v = name ? ir_find(m->g, name, strlen(name)) : -1;
  if (v < 0 || ir_node(m->g, (uint32_t)v)->op != OP_PARAM)
    return ir_err(&err, DVM_ERR_USAGE, "'%s' is not a param of graph '%s'", name ? name : "(null)",
                  ir_s(m->g, m->g->name)),
           rt_fail(&err);
  m->params[v] = t;
  free(atomic_exchange(&m->packed[v], NULL)); /* new values: pack them again */
  pthread_mutex_lock(&m->lock);
  m->packed_size[v] = 0;
  pthread_mutex_unlock(&m->lock);
  prepack(m, (uint32_t)v, t);
  return rt_ok();
}

/* given[v] for every input and param: named inputs, then the bound params. With
 * `complete`, every declared input and param must be present. */
static dvm_status gather_given(const dvm_model *m, int n, const char *const *names,
                               dvm_tensor *const *ts, bool complete, Tensor **given, Err *err) {
  const Graph *g = m->g;
  for (int i = 0; i < m->nparams; i++) given[m->pnodes[i]] = m->params[m->pnodes[i]];
  for (int i = 0; i < n; i++) {
    int64_t v = names[i] ? ir_find(g, names[i], strlen(names[i])) : -1;
    if (v < 0 || (ir_node(g, (uint32_t)v)->op != OP_INPUT && ir_node(g, (uint32_t)v)->op != OP_PARAM))
      return ir_err(err, DVM_ERR_USAGE, "'%s' is not an input of graph '%s'",
                    names[i] ? names[i] : "(null)", ir_s(g, g->name));
    if (!ts[i]) return ir_err(err, DVM_ERR_USAGE, "no tensor given for '%s'", names[i]);
    given[v] = ts[i];
  }
  for (uint32_t i = 0; complete && i < g->decls.n; i++) {
    uint32_t v = g->decls.v[i];
    if (!given[v])
      return ir_errl(err, DVM_ERR_USAGE, g->file, ir_node(g, v)->line, "%s '%s' is not %s",
                     ir_ops[ir_node(g, v)->op].name, value_name(m, v),
                     ir_node(g, v)->op == OP_PARAM ? "set" : "given");
  }
  return DVM_OK;
}

/* Bind with a subset of inputs, the params set so far and symbol values by name. */
static dvm_status bind_partial(const dvm_model *m, int ninputs, const char *const *input_names,
                               dvm_tensor *const *inputs, int nsyms, const char *const *sym_names,
                               const int64_t *sym_values, Binding *b, Err *err) {
  const Graph *g = m->g;
  Tensor **given = calloc(g->nodes.n, sizeof *given);
  int64_t *preset = malloc((g->syms.n + 1) * sizeof *preset);
  dvm_status st = DVM_OK;
  if (!given || !preset) {
    st = ir_err(err, DVM_ERR_NOMEM, "out of memory");
    goto done;
  }
  for (uint32_t s = 0; s < g->syms.n; s++) preset[s] = SYM_UNKNOWN;
  for (int i = 0; i < nsyms; i++) {
    int64_t s = sym_names[i] ? ir_sym_find(g, sym_names[i], strlen(sym_names[i])) : -1;
    if (s < 0) {
      st = ir_err(err, DVM_ERR_USAGE, "no symbol '%s' in graph '%s'",
                  sym_names[i] ? sym_names[i] : "(null)", ir_s(g, g->name));
      goto done;
    }
    preset[s] = sym_values[i];
  }
  if ((st = gather_given(m, ninputs, input_names, inputs, false, given, err))) goto done;
  st = rt_bind(g, given, preset, b, err);
done:
  free(given);
  free(preset);
  return st;
}

/* Value `name` of the model's graph, or -1 with err set. */
static int64_t value_named(const Graph *g, const char *name, Err *err) {
  int64_t v = name ? ir_find(g, name, strlen(name)) : -1;
  if (v < 0) ir_err(err, DVM_ERR_USAGE, "no value '%s' in the graph", name ? name : "(null)");
  return v;
}

dvm_status dvm_model_shape(const dvm_model *m, const char *name, int ninputs,
                           const char *const *input_names, dvm_tensor *const *inputs, int nsyms,
                           const char *const *sym_names, const int64_t *sym_values, int *rank,
                           int64_t *shape) {
  if (m->spec)
    return rt_spec_shape(m->spec, name, ninputs, input_names, inputs, nsyms, sym_names, sym_values, rank, shape);
  Err err = {0};
  const Graph *g = m->g;
  int64_t v = value_named(g, name, &err);
  if (v < 0) return rt_fail(&err);
  Binding b;
  if (bind_partial(m, ninputs, input_names, inputs, nsyms, sym_names, sym_values, &b, &err))
    return rt_fail(&err);
  const Node *n = ir_node(g, (uint32_t)v);
  *rank = n->rank;
  memcpy(shape, b.dims + b.off[v], n->rank * sizeof *shape);
  rt_binding_free(&b);
  return rt_ok();
}

dvm_status dvm_model_values(const dvm_model *m, const char *name, int ninputs,
                            const char *const *input_names, dvm_tensor *const *inputs, int nsyms,
                            const char *const *sym_names, const int64_t *sym_values, int64_t *values,
                            int max, int *n) {
  Err err = {0};
  *n = 0;
  if (m->spec) return rt_ok(); /* an ONNX model's value inputs are given, never made */
  const Graph *g = m->g;
  int64_t v = value_named(g, name, &err);
  if (v < 0) return rt_fail(&err);
  const Attr *a = ir_attr(g, (uint32_t)v, AK_VALUES);
  if (!a) return rt_ok();
  if ((int64_t)a->n > max)
    return ir_err(&err, DVM_ERR_USAGE, "input '%s' has %u values, room for %d", name, a->n, max), rt_fail(&err);
  Binding b;
  if (bind_partial(m, ninputs, input_names, inputs, nsyms, sym_names, sym_values, &b, &err)) return rt_fail(&err);
  char d[160];
  for (uint32_t i = 0; i < a->n; i++) {
    Dim x = (Dim)g->clists.v[a->off + i];
    if (!ir_dim_eval(g, x, b.sym, &values[i])) {
      ir_errl(&err, DVM_ERR_OVERFLOW, g->file, ir_node(g, (uint32_t)v)->line, "input '%s': value %s overflows int64",
              name, ir_dim_str(g, x, d, sizeof d));
      rt_binding_free(&b);
      return rt_fail(&err);
    }
  }
  *n = (int)a->n;
  rt_binding_free(&b);
  return rt_ok();
}

/* One kernel call, native or bytecode: its buffers (inputs then outputs) and dim values. */
typedef struct Call {
  KernelFn fn;        /* native code, or NULL: ... */
  const VmCode *vm;   /* ... the bytecode */
  void *bufs[256];
  int64_t dims[64];
  int64_t extent, grain;
  int64_t finish;     /* a split column kernel: its combine items after the extent's */
} Call;

static void call_range(void *arg, int64_t begin, int64_t end) {
  const Call *c = arg;
  if (c->fn) c->fn(c->bufs, c->dims, begin, end);
  else vm_exec(c->vm, c->bufs, c->dims, begin, end);
}

static void call_finish(void *arg, int64_t begin, int64_t end) {
  const Call *c = arg;
  c->fn(c->bufs, c->dims, c->extent + begin, c->extent + end);
}

/* Rows per chunk: enough work (~16K element-operations, 0.5-3 us) that splitting pays for
 * itself while the workers still spin from the last region, so small runs stay on the
 * caller with no synchronization. With 64K, W1-W3 at N = 64 ran on one thread of two;
 * 8K, which splits N = 16, helped or hurt from one run to the next on a shared host
 * (bench/RESULTS.md). */
static int64_t grain(const Graph *g, const Partition *p, const Kernel *k, int64_t item) {
  int64_t c, cost = item > 0 ? item : 1;
  for (uint32_t i = 0; i < k->nmembers; i++) { /* a matmul row costs K times more */
    uint32_t v = fu_members(p, k)[i];
    if (ir_node(g, v)->op != OP_MATMUL) continue;
    uint32_t a = ir_operand(g, v, 0);
    if (ir_dim_is_const(g, ir_shape(g, a)[ir_node(g, a)->rank - 1], &c) && c > 1)
      cost = c >= 16384 / cost ? 16384 : cost * c; /* K = 0: no work per row, no grain of 0 */
  }
  return cost >= 16384 ? 1 : 16384 / cost;
}

/* The indices of k's gathers are in range (negative ones count from the end), as the
 * reference checks them: the fused tiers read x at them. Native code takes its indices
 * from a buffer (kn_supported), which is checked here before the kernel runs. */
static dvm_status check_gathers(const dvm_model *m, const Binding *b, const Kernel *k, Tensor *const *vals, Err *err) {
  const Graph *g = m->g;
  for (uint32_t i = 0; i < k->nmembers; i++) {
    uint32_t v = fu_members(m->part, k)[i];
    if (ir_node(g, v)->op != OP_GATHER) continue;
    uint32_t x = ir_operand(g, v, 0), iv = ir_operand(g, v, 1);
    const Tensor *t = vals[iv];
    if (!t) continue; /* computed in the kernel: not native (the reference path checks) */
    int xr = ir_node(g, x)->rank;
    int64_t axis = ir_attr_int(g, v, AK_AXIS, 0), d;
    int a = ir_axis(axis, xr);
    if (a < 0 || !ir_dim_eval(g, ir_shape(g, x)[a], b->sym, &d)) continue;
    int64_t n = t->numel;
    for (int64_t j = 0; j < n; j++) {
      int64_t q = t->dtype == DT_I32 ? ((const int32_t *)t->data)[j] : ((const int64_t *)t->data)[j];
      if (q < -d || q >= d) {
        const Node *nd = ir_node(g, v);
        const char *name = ir_s(g, nd->name);
        if (q == INT64_MAX) /* the mark of an index out of range in an op the importer composed */
          return ir_errl(err, DVM_ERR_RUNTIME, g->file, nd->line, "%s%sgather: an index is out of the range of its axis",
                         name, name[0] ? " = " : "");
        return ir_errl(err, DVM_ERR_RUNTIME, g->file, nd->line, "%s%sgather: index %lld is out of range for dim %lld (axis %lld)",
                       name, name[0] ? " = " : "", (long long)q, (long long)d, (long long)axis);
      }
    }
  }
  return DVM_OK;
}

/* Param v (bound to t, a [K, N] f32 weight) packed for code of `lanes` lanes (kn_pack):
 * made when it is bound (prepack), else by the first run that needs it, under the lock
 * (concurrent runs wait for the one copy), then read without a lock. The copy is a cache
 * of the bound values, hence the cast: a run does not change what the model computes. */
static float *packed_param(const dvm_model *mc, uint32_t v, const Tensor *t, int lanes, Err *err) {
  dvm_model *m = (dvm_model *)mc;
  float *pk = atomic_load_explicit(&m->packed[v], memory_order_acquire);
  if (pk) return pk;
  pthread_mutex_lock(&m->lock);
  if (!(pk = atomic_load_explicit(&m->packed[v], memory_order_relaxed))) {
    /* panels on 64 bytes (aligned vector loads); W5's 32 MB on 2 MB pages (rt_alloc) */
    size_t bytes = kn_packed_floats(t->shape[0], t->shape[1], lanes) * sizeof(float);
    if ((pk = rt_alloc(bytes))) {
      m->packed_size[v] = bytes;
      kn_pack(t->data, t->shape[0], t->shape[1], lanes, pk);
      atomic_store_explicit(&m->packed[v], pk, memory_order_release);
    }
  }
  pthread_mutex_unlock(&m->lock);
  if (!pk) ir_err(err, DVM_ERR_NOMEM, "out of memory packing a weight");
  return pk;
}

/* The lanes of the model's packed copies (kn_pack): the native code's (llvm and auto
 * tiers), else the bytecode's. */
static int pack_lanes(const dvm_model *m) {
  int vl = 0;
  vm_isa(&vl);
  return m->jit ? jit_lanes(m->jit) : vl;
}

/* Bytecode reads the packed copy when it reads panels of the copy's width (else b as it is). */
static bool vm_reads_packed(const dvm_model *m, const VmCode *vm) {
  int vl = 0;
  vm_isa(&vl);
  return vm && vm->packed && vl == pack_lanes(m);
}

/* The value of mix kernel k's prologue member u into vals[u], on the kernel-level
 * reference path: u and the members it reads (a layernorm's gamma and beta may be fills
 * or views computed in the kernel), which are in id order before it. */
static dvm_status prologue_value(const Graph *g, const Partition *p, const Kernel *k, const Binding *b,
                                 Tensor **vals, uint32_t u, Err *err) {
  const uint32_t *mem = fu_members(p, k);
  uint32_t n = 0, at = k->nmembers;
  while (at > 0 && mem[at - 1] > u) at--;
  uint8_t *need = calloc(at + 1, 1);
  uint32_t *nodes = malloc((at + 1) * sizeof *nodes);
  if (!need || !nodes) {
    free(need), free(nodes);
    return ir_err(err, DVM_ERR_NOMEM, "out of memory");
  }
  if (!at || mem[at - 1] != u) {
    free(need), free(nodes);
    return ir_err(err, DVM_ERR_RUNTIME, "internal: a prologue that is not a member of its kernel");
  }
  need[at - 1] = 1;
  for (uint32_t i = at; i-- > 0;) {
    if (!need[i]) continue;
    for (uint32_t q = 0; q < ir_node(g, mem[i])->nin; q++) { /* operands that are members */
      int32_t x = fu_member_index(p, k, ir_operand(g, mem[i], q));
      if (x >= 0 && (uint32_t)x < i) need[x] = 1;
    }
  }
  for (uint32_t i = 0; i < at; i++)
    if (need[i]) nodes[n++] = mem[i];
  dvm_status st = rt_ref_run_nodes(g, b, vals, nodes, n, &u, 1, err);
  free(need), free(nodes);
  return st;
}

/* Prepare kernel k's call (native fn, else bytecode vm): its outputs become new tensors in
 * vals (or the caller's tensors in dst, written in place); its inputs are already there. */
static dvm_status prepare(const dvm_model *m, const Binding *b, const Plan *pl, char *arena,
                          Tensor **vals, Tensor *const *dst, const Kernel *k, KernelFn fn,
                          const VmCode *vm, Call *c, Err *err) {
  const Graph *g = m->g;
  const Partition *p = m->part;
  if (k->ninputs + k->noutputs + 3 > 256 || k->ndims >= 64)
    return ir_err(err, DVM_ERR_UNSUPPORTED, "kernel with too many buffers or dims");
  c->fn = fn, c->vm = vm;
  if (!kernel_dims(m, b, k, c->dims)) return ir_err(err, DVM_ERR_OVERFLOW, "a kernel dim overflows int64");
  for (uint32_t j = 0; j < k->ninputs; j++) c->bufs[j] = vals[fu_inputs(p, k)[j]]->data;
  dvm_status gs = check_gathers(m, b, k, vals, err);
  if (gs) return gs;
  for (uint32_t j = 0; j < k->noutputs; j++) {
    uint32_t o = fu_outputs(p, k)[j];
    const Node *n = ir_node(g, o);
    if (dst && dst[o]) { /* a graph output the caller gave: written in place */
      vals[o] = dst[o];
    } else if (arena && pl->aoff[o] != SIZE_MAX) { /* an intermediate: in the run's arena */
      dvm_status st = rt_tensor_wrap((DType)n->dtype, n->rank, b->dims + b->off[o], arena + pl->aoff[o], &vals[o], err);
      if (st) return st;
    } else {
      dvm_status st = rt_tensor_new((DType)n->dtype, n->rank, b->dims + b->off[o], &vals[o], err);
      if (st) return st; /* run_fused releases what was made */
    }
    c->bufs[k->ninputs + j] = vals[o]->data;
  }
  /* a mix kernel's param weight, packed once per model for the host's lanes (the native
     code's, else the bytecode's): native code always reads it, bytecode when its lanes
     are the same (else it reads b as it is: NULL) */
  const KnKernel *kk = m->low[k - p->kernels.v];
  int pj = fn || vm_reads_packed(m, vm) ? kn_packed_input(kk) : -1;
  c->bufs[k->ninputs + k->noutputs] = NULL;
  if (pj >= 0) {
    uint32_t w = fu_inputs(p, k)[pj];
    if (!(c->bufs[k->ninputs + k->noutputs] = packed_param(m, w, vals[w], pack_lanes(m), err)))
      return DVM_ERR_NOMEM;
  }
  /* bytecode of a mix kernel with a normalization prologue that its driver does not
     compute (VmCode.pro_kind): the prologue's value first, on the kernel-level reference
     path, into the buffer after the packed one (shared by the kernels of a dispatch that
     read it; run_fused frees it after the dispatch) */
  c->bufs[k->ninputs + k->noutputs + 1] = NULL;
  if (!fn && vm && vm->has_prologue && !vm->pro_kind) {
    uint32_t u = vm->prologue;
    if (!vals[u]) {
      dvm_status st = prologue_value(g, p, k, b, vals, u, err);
      if (st) return st;
    }
    c->bufs[k->ninputs + k->noutputs + 1] = vals[u]->data;
  }
  /* a column kernel's native code splits its reduced rows as the plan says */
  const struct Split *sp = pl->split ? &pl->split[k - p->kernels.v] : NULL;
  c->dims[k->ndims] = 1, c->finish = 0, c->bufs[k->ninputs + k->noutputs + 2] = NULL;
  if (fn && arena && sp && sp->off != SIZE_MAX)
    c->dims[k->ndims] = sp->blocks, c->finish = sp->finish, c->bufs[k->ninputs + k->noutputs + 2] = arena + sp->off;
  int64_t item = 1;
  c->extent = fn ? kn_extent(kk, c->dims, jit_lanes(m->jit), &item) : vm_extent(vm, c->dims, &item);
  bool empty = true; /* nothing to write: the rows of a [big, 0] output are not walked */
  for (uint32_t j = 0; j < k->noutputs; j++) empty &= b->numel[fu_outputs(p, k)[j]] == 0;
  if (empty) c->extent = 0, c->finish = 0;
  c->grain = grain(g, p, k, item);
  return DVM_OK;
}

/* Kernel k's dim values under binding b; false if one overflows. */
static bool kernel_dims(const dvm_model *m, const Binding *b, const Kernel *k, int64_t *dims) {
  for (uint32_t q = 0; q < k->ndims; q++)
    if (!ir_dim_eval(m->g, m->part->dims.v[k->dims + q], b->sym, &dims[q])) return false;
  return true;
}

enum { STACK_MAX = 16 }; /* kernels launched as one parallel region */

/* Kernel i's native code (read atomically: the background compiler publishes it) or NULL. */
static KernelFn native_fn(const dvm_model *m, uint32_t i) {
  return m->entry ? atomic_load(&m->entry[i]->fn) : NULL;
}

static const VmCode *bytecode(const dvm_model *m, uint32_t i) { return m->vm ? m->vm[i] : NULL; }

/* The fused tiers: the partition dispatch by dispatch. A dispatch whose kernels all have
 * code (native, else bytecode; a kernel may switch to native between two reads) runs as
 * one parallel region (its kernels are independent: stacked); other kernels run through
 * the kernel-level reference path. Small kernels stay inline on the
 * caller (rt_pool_run), so a chain of them costs no synchronization. Materialized values
 * are freed after the last kernel that reads them; on success vals[o] holds the tensor of
 * every graph output o (new, or the caller's from dst). */
static dvm_status run_fused(const dvm_model *m, const Plan *pl, char *arena, Tensor **vals,
                            Tensor *const *dst, Err *err) {
  const Binding *b = &pl->b;
  const Graph *g = m->g;
  const Partition *p = m->part;
  dvm_status st = DVM_OK;
  Call *calls = NULL;
  for (uint32_t i = 0, next; i < p->kernels.n && !st; i = next) {
    uint32_t d = p->kernels.v[i].dispatch;
    bool coded = true;
    KernelFn fns[STACK_MAX];
    for (next = i; next < p->kernels.n && p->kernels.v[next].dispatch == d && next - i < STACK_MAX; next++) {
      fns[next - i] = native_fn(m, next); /* read once: the same code for the whole call */
      coded &= fns[next - i] || bytecode(m, next);
    }
    if (coded) {
      if (!calls && !(calls = malloc(STACK_MAX * sizeof *calls))) {
        st = ir_err(err, DVM_ERR_NOMEM, "out of memory");
        break;
      }
      PoolJob jobs[STACK_MAX];
      uint32_t n = next - i;
      for (uint32_t j = 0; j < n && !st; j++) {
        st = prepare(m, b, pl, arena, vals, dst, &p->kernels.v[i + j], fns[j], bytecode(m, i + j), &calls[j], err);
        jobs[j] = (PoolJob){call_range, &calls[j], calls[j].extent, calls[j].grain};
      }
      if (st) break;
      if (n == 1) rt_pool_run(m->pool, call_range, &calls[0], calls[0].extent, calls[0].grain);
      else rt_pool_run_many(m->pool, jobs, (int)n);
      for (uint32_t j = 0; j < n; j++)
        if (calls[j].finish > 0) rt_pool_run(m->pool, call_finish, &calls[j], calls[j].finish, 1);
    } else {
      next = i + 1;
      const Kernel *k = &p->kernels.v[i];
      KernelFn fn = native_fn(m, i);
      if (fn || bytecode(m, i)) {
        if (!calls && !(calls = malloc(STACK_MAX * sizeof *calls))) {
          st = ir_err(err, DVM_ERR_NOMEM, "out of memory");
          break;
        }
        if (!(st = prepare(m, b, pl, arena, vals, dst, k, fn, bytecode(m, i), &calls[0], err))) {
          rt_pool_run(m->pool, call_range, &calls[0], calls[0].extent, calls[0].grain);
          if (calls[0].finish > 0) rt_pool_run(m->pool, call_finish, &calls[0], calls[0].finish, 1);
        }
      } else {
        st = rt_ref_run_nodes(g, b, vals, fu_members(p, k), k->nmembers, fu_outputs(p, k), k->noutputs, err);
      }
    }
    for (uint32_t q = i; q < next && !st; q++) { /* intermediates no later kernel reads */
      const Kernel *k = &p->kernels.v[q];
      const VmCode *vm = bytecode(m, q);
      if (vm && vm->has_prologue && vals[vm->prologue]) /* computed for bytecode (prepare) */
        rt_tensor_free(vals[vm->prologue]), vals[vm->prologue] = NULL;
      for (uint32_t j = 0; j < k->ninputs; j++) {
        uint32_t u = fu_inputs(p, k)[j];
        if (m->last[u] < next && vals[u] && ir_ops[ir_node(g, u)->op].kind != OPK_SOURCE)
          rt_tensor_free(vals[u]), vals[u] = NULL;
      }
      for (uint32_t j = 0; j < k->noutputs; j++) { /* written but never read (a call's result) */
        uint32_t o = fu_outputs(p, k)[j];
        if (m->last[o] == q && vals[o]) rt_tensor_free(vals[o]), vals[o] = NULL;
      }
    }
  }
  free(calls);
  /* outputs that no kernel computes: inputs or params returned as they are (a copy) */
  for (uint32_t i = 0; i < g->outputs.n && !st; i++) {
    uint32_t o = g->outputs.v[i];
    if (p->kernel_of[o] != UINT32_MAX) continue;
    bool dup = false;
    for (uint32_t k = 0; k < i; k++) dup |= g->outputs.v[k] == o;
    if (!dup) st = rt_ref_run_nodes(g, b, vals, NULL, 0, &o, 1, err);
  }
  if (st) /* release what this run made; inputs, params and given outputs are the caller's */
    for (uint32_t v = 0; v < g->nodes.n; v++)
      if (vals[v] && ir_ops[ir_node(g, v)->op].kind != OPK_SOURCE && (!dst || dst[v] != vals[v]))
        rt_tensor_free(vals[v]), vals[v] = NULL;
  return st;
}

/* Does tensor t have value v's dtype and shape under binding b? */
static bool fits(const Graph *g, const Binding *b, uint32_t v, const Tensor *t) {
  const Node *n = ir_node(g, v);
  return t && t->dtype == (DType)n->dtype && t->rank == n->rank &&
         !memcmp(t->shape, b->dims + b->off[v], (size_t)n->rank * sizeof *t->shape);
}

/* One run. Without `into`, outputs[i] receives a new tensor for output i. With it, output
 * i is written into into[i]: in place by native kernels, else copied there. */
static dvm_status run(dvm_model *m, int ninputs, const char *const *names, dvm_tensor *const *inputs,
                      Tensor *const *decl, dvm_tensor **outputs, dvm_tensor *const *into) {
  Err err = {0};
  const Graph *g = m->g;
  double t0 = ir_now_us();
  Tensor **vals = calloc(g->nodes.n, sizeof *vals), **dst = NULL;
  dvm_status st;
  Binding own = {0}, *bp = &own;
  Plan *pl = NULL;
  void *arena = NULL;
  size_t arena_size = 0;
  if (!vals || (into && !(dst = calloc(g->nodes.n, sizeof *dst)))) {
    st = ir_err(&err, DVM_ERR_NOMEM, "out of memory");
    goto done;
  }
  if (decl) /* every input and param by position: the lazy front end's models */
    for (uint32_t i = 0; i < g->decls.n; i++) vals[g->decls.v[i]] = decl[i];
  else if ((st = gather_given(m, ninputs, names, inputs, true, vals, &err)))
    goto done;
  if (m->part) { /* fused tiers: the binding's plan */
    if ((st = plan_get(m, vals, &pl, &err))) goto done;
    bp = &pl->b;
    if ((m->entry || m->vm) && (arena = arena_take(m, pl->arena_bytes, &arena_size, &err, &st), st)) goto done;
  } else if ((st = rt_bind(g, vals, NULL, &own, &err))) {
    goto done;
  }
  const Binding b = *bp;
  for (uint32_t i = 0; into && i < g->outputs.n; i++) {
    uint32_t o = g->outputs.v[i];
    if (!fits(g, &b, o, into[i])) {
      st = ir_err(&err, DVM_ERR_USAGE, "output %u ('%s') does not have the run's dtype and shape", i,
                  ir_s(g, ir_node(g, o)->name));
      goto done;
    }
    if (!dst[o] && ir_ops[ir_node(g, o)->op].kind != OPK_SOURCE) dst[o] = into[i];
  }
  if ((st = m->part ? run_fused(m, pl, arena, vals, dst, &err) : rt_ref_run(g, &b, vals, &err))) goto done;
  if (into) { /* outputs not written in place are copied; what the run made is freed */
    for (uint32_t i = 0; i < g->outputs.n; i++) {
      Tensor *t = vals[g->outputs.v[i]];
      if (t != into[i]) memcpy(into[i]->data, t->data, (size_t)t->numel * ir_dtype_size(t->dtype));
    }
    for (uint32_t i = 0; i < g->outputs.n; i++) {
      uint32_t o = g->outputs.v[i];
      bool seen = false;
      for (uint32_t k = 0; k < i; k++) seen |= g->outputs.v[k] == o;
      if (!seen && vals[o] != dst[o]) rt_tensor_free(vals[o]);
    }
  } else {
    /* every output is now a new tensor; the same value listed twice gets a copy */
    uint32_t made = 0;
    for (; made < g->outputs.n; made++) {
      Tensor *t = vals[g->outputs.v[made]];
      for (uint32_t k = 0; k < made && t; k++)
        if (g->outputs.v[k] == g->outputs.v[made]) {
          Tensor *c;
          if ((st = rt_tensor_new(t->dtype, t->rank, t->shape, &c, &err))) break;
          memcpy(c->data, t->data, (size_t)t->numel * ir_dtype_size(t->dtype));
          t = c;
          break;
        }
      if (st) break;
      outputs[made] = t;
    }
    if (st) { /* out of memory while copying: release what this run made */
      for (uint32_t i = 0; i < made; i++) rt_tensor_free(outputs[i]), outputs[i] = NULL;
      for (uint32_t i = made; i < g->outputs.n; i++) {
        bool seen = false;
        for (uint32_t k = 0; k < i; k++) seen |= g->outputs.v[k] == g->outputs.v[i];
        if (!seen) rt_tensor_free(vals[g->outputs.v[i]]);
      }
      goto done;
    }
  }
  pthread_mutex_lock(&m->lock);
  m->stats.runs++;
  m->stats.run_us = ir_now_us() - t0;
  pthread_mutex_unlock(&m->lock);
done:
  rt_binding_free(&own);
  plan_release(m, pl, arena, arena_size);
  free(vals);
  free(dst);
  return st ? rt_fail(&err) : rt_ok();
}

typedef struct RunArgs {
  dvm_model *m;
  int ninputs;
  const char *const *names;
  dvm_tensor *const *inputs;
  Tensor *const *decl;
  dvm_tensor **outputs;
  dvm_tensor *const *into;
} RunArgs;

static dvm_status run_args(void *p) {
  RunArgs *a = p;
  return run(a->m, a->ninputs, a->names, a->inputs, a->decl, a->outputs, a->into);
}

/* run() on the caller's thread when its stack has room for the kernels (RT_KERNEL_STACK),
 * else on a new thread with enough stack while the caller waits: a host thread with a
 * small stack (musl's default is 128 KB; W5 in the bytecode tier overflowed 256 KB) gets a
 * run that costs a thread start more, not a crash. */
static dvm_status run_roomy(dvm_model *m, int ninputs, const char *const *names,
                            dvm_tensor *const *inputs, Tensor *const *decl, dvm_tensor **outputs,
                            dvm_tensor *const *into) {
  if (rt_stack_room()) return run(m, ninputs, names, inputs, decl, outputs, into);
  RunArgs a = {m, ninputs, names, inputs, decl, outputs, into};
  return rt_call_with_stack(run_args, &a, RT_THREAD_STACK);
}

dvm_status dvm_model_run(dvm_model *m, int ninputs, const char *const *names,
                         dvm_tensor *const *inputs, dvm_tensor **outputs) {
  if (m->spec) return rt_spec_run(m->spec, ninputs, names, inputs, outputs, NULL);
  return run_roomy(m, ninputs, names, inputs, NULL, outputs, NULL);
}

dvm_status rt_model_run_decl(dvm_model *m, Tensor *const *decl, Tensor *const *into) {
  return run_roomy(m, 0, NULL, NULL, decl, NULL, into);
}

dvm_status dvm_model_run_into(dvm_model *m, int ninputs, const char *const *names,
                              dvm_tensor *const *inputs, dvm_tensor *const *outputs) {
  if (m->spec) return rt_spec_run(m->spec, ninputs, names, inputs, NULL, outputs);
  return run_roomy(m, ninputs, names, inputs, NULL, NULL, outputs);
}

dvm_status dvm_model_cost(const dvm_model *m, int ninputs, const char *const *names,
                          dvm_tensor *const *inputs, int nsyms, const char *const *sym_names,
                          const int64_t *sym_values, dvm_cost *out) {
  if (m->spec) return rt_spec_cost(m->spec, ninputs, names, inputs, nsyms, sym_names, sym_values, out);
  Err err = {0};
  const Graph *g = m->g;
  Binding b;
  if (bind_partial(m, ninputs, names, inputs, nsyms, sym_names, sym_values, &b, &err)) return rt_fail(&err);
  out->bytes = out->flops = 0;
  for (uint32_t i = 0; i < g->decls.n; i++)
    out->bytes += (double)b.numel[g->decls.v[i]] * (double)ir_dtype_size((DType)ir_node(g, g->decls.v[i])->dtype);
  for (uint32_t i = 0; i < g->outputs.n; i++)
    out->bytes += (double)b.numel[g->outputs.v[i]] * (double)ir_dtype_size((DType)ir_node(g, g->outputs.v[i])->dtype);
  for (uint32_t v = 0; v < g->nodes.n; v++) {
    if (ir_node(g, v)->op != OP_MATMUL) continue;
    uint32_t a = ir_operand(g, v, 0);
    int ra = ir_node(g, a)->rank;
    const int64_t *sa = b.dims + b.off[a];
    int64_t k = ra == 1 ? sa[0] : ir_attr_int(g, v, AK_TRANSPOSE_A, 0) ? sa[ra - 2] : sa[ra - 1];
    out->flops += 2.0 * (double)b.numel[v] * (double)k;
  }
  rt_binding_free(&b);
  return rt_ok();
}

void dvm_model_wait(dvm_model *m) {
  if (m->spec) rt_spec_wait(m->spec);
  if (m->jit) jit_wait(m->jit, m);
}

void dvm_model_stats(const dvm_model *m, dvm_stats *out) {
  if (m->spec) {
    rt_spec_stats(m->spec, out);
    return;
  }
  pthread_mutex_lock((pthread_mutex_t *)&m->lock);
  *out = m->stats;
  out->kernels = m->nkernels;
  out->native_kernels = 0;
  double own_ms = 0; /* compile time of this model's kernels, whoever compiled them */
  for (uint32_t i = 0; m->entry && i < m->part->kernels.n; i++)
    if (atomic_load(&m->entry[i]->fn)) out->native_kernels++, own_ms += m->entry[i]->compile_ms;
  if (m->jit) { /* the context's kernel cache */
    JitStats js;
    jit_stats(m->jit, &js);
    out->cache_hits = js.hits, out->cache_misses = js.misses;
    out->llvm_compiles = js.compiles;
    out->disk_hits = js.disk_hits, out->disk_misses = js.disk_misses;
    out->disk_writes = js.disk_writes, out->disk_rejects = js.disk_rejects;
    out->code_bytes = js.resident, out->code_evictions = js.evictions;
    out->compile_ms = own_ms;
  }
  pthread_mutex_unlock((pthread_mutex_t *)&m->lock);
}

size_t rt_model_bytes(dvm_model *m) {
  const Graph *g = m->g;
  size_t n = sizeof *m + g->strs.cap + (size_t)g->nodes.cap * sizeof(Node) +
             ((size_t)g->operands.cap + g->outputs.cap + g->decls.cap) * sizeof(uint32_t) +
             (size_t)g->attrs.cap * sizeof(Attr) + ((size_t)g->lists.cap + g->clists.cap) * 8 +
             (size_t)g->shapes.cap * sizeof(Dim) + (size_t)g->dims.code.cap * 8 +
             (size_t)g->nodes.n * 5 * sizeof(void *); /* params, packed, last, ... */
  pthread_mutex_lock(&m->lock);
  for (int i = 0; i < m->narenas; i++) n += m->arena_size[i];
  for (uint32_t v = 0; v < g->nodes.n; v++) n += m->packed_size[v];
  for (const Plan *pl = m->plans; pl; pl = pl->next)
    n += sizeof *pl + (size_t)g->nodes.n * (sizeof(size_t) + 2 * sizeof(int64_t));
  pthread_mutex_unlock(&m->lock);
  for (uint32_t i = 0; m->part && i < m->part->kernels.n; i++) {
    n += sizeof(Kernel) + sizeof(KnKernel);
    const VmCode *c = m->vm ? m->vm[i] : NULL;
    if (c)
      n += sizeof *c + (size_t)c->ncode * sizeof(VmIns) + (size_t)c->npool * 8 +
           (size_t)c->npass * sizeof(VmPass) + (size_t)c->nbase * sizeof(VmBase) +
           (size_t)c->ndimtab * sizeof(VmDim);
  }
  return n;
}

dvm_status rt_model_adopt_onnx(dvm_context *ctx, dvm_graph *g, const dvm_compile_options *opt,
                               dvm_model **out) {
  dvm_status st = dvm_model_compile(ctx, g, opt, out);
  if (!st && (st = dvm_model_set_graph_params(*out, g))) dvm_model_destroy(*out), *out = NULL;
  if (!st) {
    (*out)->adopted = g->values, (*out)->nadopted = g->nvalues;
    g->values = NULL, g->nvalues = 0;
  }
  return st;
}

/* A specialized model (spec.c) for the file data[0..len) (taken), whose import needs the
 * values of input `need`: its inputs are the file's declared ones. */
static dvm_status load_specialized(dvm_context *ctx, const char *path, char *data, size_t len,
                                   const dvm_compile_options *opt, const char *need, dvm_model **out) {
  Err err = {0};
  Graph *decl;
  char **names;
  int *dtypes, nout;
  if (onnx_signature(data, len, path, &decl, &names, &dtypes, &nout, &err)) return free(data), rt_fail(&err);
  dvm_model *m = calloc(1, sizeof *m);
  if (!m || !(m->inputs = malloc((decl->decls.n + 1) * sizeof *m->inputs))) ir_oom();
  for (uint32_t i = 0; i < decl->decls.n; i++) m->inputs[m->ninputs++] = decl->decls.v[i];
  m->g = decl;
  m->spec = rt_spec_new(ctx, path, data, len, opt, need, names, dtypes, nout);
  *out = m;
  return rt_ok();
}

/* An ONNX model compiled with its initializers bound: the model takes the graph's values
 * over, so nothing else has to outlive it. A model whose structure depends on the values
 * of an input is specialized on them (spec.c). */
dvm_status dvm_model_load_onnx(dvm_context *ctx, const char *path, const dvm_compile_options *opt,
                               dvm_model **out) {
  Err err = {0};
  dvm_graph *g;
  char *data, need[256];
  size_t n;
  *out = NULL;
  if (rt_read_file(path, &data, &n, &err)) return rt_fail(&err);
  dvm_status st = rt_graph_parse_onnx(ctx, data, n, path, NULL, &g, need, sizeof need);
  if (st && need[0]) return load_specialized(ctx, path, data, n, opt, need, out);
  free(data);
  if (st) return st;
  st = rt_model_adopt_onnx(ctx, g, opt, out);
  dvm_graph_destroy(g);
  return st;
}
