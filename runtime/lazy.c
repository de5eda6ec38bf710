/* runtime/lazy.c — lazy tensors: eager programs recorded op by op and fused when a value
 * is needed (runtime/lazy.h, docs/lazy.md).
 *
 * Each thread records into its own Trace per context: a graph whose inputs are the
 * computed values the ops read (wrapped tensors, results of earlier flushes), with their
 * concrete dims, so inference at each op gives the result's dtype and shape at once and
 * reports an error at the op that causes it. A flush (reading a pending value, an
 * explicit sync, a `call` op, a trace of max_ops ops, a pending value used from another
 * thread, the thread's exit) runs, through the trace cache (trace.c), the part of the
 * trace that the values the host still holds need; those become computed, the rest is
 * dropped, and the trace starts empty.
 *
 * References: a dvm_lazy counts the host's reference and one per trace that records or
 * reads it; it is freed when the last goes. Its state moves once, from pending (`trace`
 * set, under that trace's lock) to computed (`t` set, then `trace` cleared with release
 * order) or failed. A thread that finds an operand pending in another thread's trace
 * flushes that trace under its lock before it locks its own: no thread holds two trace
 * locks, so traces cannot deadlock each other. Lock order: Lazy.lock, then a trace's,
 * then the trace cache's; Lazy.opt_lock and spare_lock are taken alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "lazy.h"

struct dvm_lazy {
  _Atomic int refs;
  _Atomic int hosts;              /* the host's references (dvm_lazy_destroy drops one) */
  Lazy *lz;
  _Atomic(struct Trace *) trace;  /* pending in this trace; NULL once computed or failed */
  uint32_t value;                 /* pending: its value id in the trace */
  Tensor *t;                      /* computed: its values */
  bool own;                       /* t is ours (a result, a scalar's), not the host's */
  bool spare;                     /* t's data is a result block (to Lazy.spare when freed) */
  bool literal;                   /* a scalar constant (dvm_lazy_scalar) */
  uint64_t serial;                /* a constant tensor's wrap (dvm_lazy_wrap_const), else 0 */
  dvm_status failed;              /* the flush that was to compute it failed, */
  char *why;                      /* with this message */
  DType dtype;
  int rank;
  int64_t shape[DVM_MAX_RANK];
};

/* An op's attribute text as parsed before (parsing is most of what recording an op
 * costs): the attributes with dims as their values, list entries apart. */
typedef struct Memo {
  char *text;
  size_t len;
  uint64_t hash;
  uint16_t op;
  uint32_t nattr;
  Attr *attr;     /* AV_DIM: i is the value; lists: off indexes `list` */
  int64_t *list;  /* AV_DIMLIST entries are values */
} Memo;
enum { MEMOS = 16 };

typedef struct Trace {
  struct Trace *next;             /* Lazy.traces */
  pthread_mutex_t lock;
  Lazy *lz;
  Graph *g;                       /* pending ops over inputs with constant dims */
  VEC(dvm_lazy *) of;             /* per value id: the op's result or the input's value
                                     (a reference each); NULL for literals */
  uint32_t *leaf;                 /* open addressing: input value id + 1 by dvm_lazy */
  uint32_t leafcap, nleaves;
  uint32_t nops;
  bool orphan;                    /* its thread has exited */
  Memo memo[MEMOS];               /* by hash of (op, attribute text) */
  Canon *canon;                   /* the flushes' scratch: their canonical forms, */
  VEC(uint32_t) outs;             /* outputs, */
  VEC(Tensor *) leaves, res;      /* per value: leaves' tensors, results' */
  VEC(uint64_t) serial;           /* per value: a constant leaf's wrap */
} Trace;

enum { KEEP_DIMS = 4096, DEFAULT_MAX_OPS = 1024, DEFAULT_ENTRIES = 256 };
#define DEFAULT_BYTES ((int64_t)1 << 30)

/* A result block of rt_alloc_size(bytes) bytes: a spare one of that size, else new. */
static void *block_take(Lazy *lz, size_t bytes) {
  size_t size = rt_alloc_size(bytes);
  void *p = NULL;
  pthread_mutex_lock(&lz->spare_lock);
  for (int i = 0; i < lz->nspare; i++)
    if (lz->spare_size[i] == size) {
      p = lz->spare[i];
      lz->spare_bytes -= size;
      lz->spare[i] = lz->spare[--lz->nspare], lz->spare_size[i] = lz->spare_size[lz->nspare];
      break;
    }
  pthread_mutex_unlock(&lz->spare_lock);
  return p ? p : rt_alloc(bytes);
}

static void block_give(Lazy *lz, void *p, size_t bytes) {
  size_t size = rt_alloc_size(bytes);
  pthread_mutex_lock(&lz->spare_lock);
  if (lz->nspare < LAZY_SPARES && lz->spare_bytes + size <= LAZY_SPARE_BYTES) {
    lz->spare[lz->nspare] = p, lz->spare_size[lz->nspare++] = size;
    lz->spare_bytes += size, p = NULL;
  }
  pthread_mutex_unlock(&lz->spare_lock);
  free(p);
}

static size_t tensor_bytes(const Tensor *t) { return (size_t)t->numel * ir_dtype_size(t->dtype); }

static void release(dvm_lazy *x) {
  if (!x || atomic_fetch_sub(&x->refs, 1) != 1) return;
  if (x->spare && x->t) block_give(x->lz, x->t->data, tensor_bytes(x->t));
  if (x->own) rt_tensor_free(x->t);
  free(x->why);
  free(x);
}

/* ---- traces -------------------------------------------------------------------------------- */

static void trace_reset(Trace *t) {
  for (uint32_t v = 0; v < t->of.n; v++) release(t->of.v[v]);
  t->of.n = 0;
  ir_graph_reset(t->g, KEEP_DIMS);
  if (t->leaf) memset(t->leaf, 0, t->leafcap * sizeof *t->leaf);
  t->nleaves = 0;
  t->nops = 0;
}

static void memo_clear(Memo *m) {
  free(m->text), free(m->attr), free(m->list);
  memset(m, 0, sizeof *m);
}

static void trace_free(Trace *t) {
  trace_reset(t);
  for (int i = 0; i < MEMOS; i++) memo_clear(&t->memo[i]);
  rt_trace_scratch_free(t->canon);
  vec_free(t->outs), vec_free(t->leaves), vec_free(t->res), vec_free(t->serial);
  vec_free(t->of);
  ir_graph_free(t->g);
  free(t->leaf);
  pthread_mutex_destroy(&t->lock);
  free(t);
}

/* The thread's exit: its trace stays, for the pending values other threads may read, and
 * is taken over by the next thread that needs one once it is empty. */
static dvm_status flush_locked(Trace *t, Err *err);

/* The thread's exit: what it left pending that the host holds is computed (other threads
 * may read it), the rest dropped; the empty trace is kept for the next thread. */
static void trace_orphan(void *p) {
  Trace *t = p;
  Err err = {0};
  pthread_mutex_lock(&t->lock);
  flush_locked(t, &err); /* a failure is recorded in the values it was to compute */
  pthread_mutex_unlock(&t->lock);
  pthread_mutex_lock(&t->lz->lock);
  t->orphan = true;
  pthread_mutex_unlock(&t->lz->lock);
}

/* This thread's trace for lz; NULL if out of memory. */
static Trace *my_trace(Lazy *lz) {
  Trace *t = pthread_getspecific(lz->key);
  if (t) return t;
  pthread_mutex_lock(&lz->lock);
  for (t = lz->traces; t; t = t->next) { /* an orphan with nothing pending */
    if (!t->orphan) continue;
    pthread_mutex_lock(&t->lock);
    bool empty = !t->nops;
    pthread_mutex_unlock(&t->lock);
    if (empty) break;
  }
  if (t) {
    t->orphan = false;
  } else if ((t = calloc(1, sizeof *t)) && (t->g = ir_graph_new("lazy"))) {
    pthread_mutex_init(&t->lock, NULL);
    t->lz = lz;
    t->next = lz->traces, lz->traces = t;
  } else {
    free(t);
    t = NULL;
  }
  pthread_mutex_unlock(&lz->lock);
  if (t && pthread_setspecific(lz->key, t)) { /* cannot be kept: orphaned again */
    trace_orphan(t);
    return NULL;
  }
  if (t) {
    pthread_mutex_lock(&t->lock);
    trace_reset(t); /* an orphan's leftovers: inputs of ops that failed */
    pthread_mutex_unlock(&t->lock);
  }
  return t;
}

static uint32_t ptr_hash(const void *p) {
  uint64_t x = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
  return (uint32_t)(x >> 32);
}

/* The input node of computed value x in t, added if x is new to the trace. */
static int64_t leaf_of(Trace *t, dvm_lazy *x, Err *err) {
  if ((t->nleaves + 1) * 2 > t->leafcap) {
    uint32_t cap = t->leafcap ? t->leafcap * 2 : 64;
    uint32_t *h = calloc(cap, sizeof *h);
    if (!h) return ir_err(err, DVM_ERR_NOMEM, "out of memory"), -1;
    for (uint32_t i = 0; i < t->leafcap; i++)
      if (t->leaf[i]) {
        uint32_t j = ptr_hash(t->of.v[t->leaf[i] - 1]) & (cap - 1);
        while (h[j]) j = (j + 1) & (cap - 1);
        h[j] = t->leaf[i];
      }
    free(t->leaf);
    t->leaf = h, t->leafcap = cap;
  }
  uint32_t j = ptr_hash(x) & (t->leafcap - 1);
  for (; t->leaf[j]; j = (j + 1) & (t->leafcap - 1))
    if (t->of.v[t->leaf[j] - 1] == x) return t->leaf[j] - 1;
  Dim shape[DVM_MAX_RANK];
  for (int k = 0; k < x->rank; k++) shape[k] = ir_dim_const(t->g, x->shape[k]);
  int64_t v = ir_add_source(t->g, x->serial ? OP_PARAM : OP_INPUT, x->dtype, x->rank, shape);
  atomic_fetch_add(&x->refs, 1);
  vec_push(t->of, x);
  t->leaf[j] = (uint32_t)v + 1;
  t->nleaves++;
  return v;
}

/* A literal node of dtype dt with value attribute a. */
static int64_t literal_node(Trace *t, DType dt, Attr a, Err *err) {
  NodeDraft d = {.op = OP_LITERAL, .dtype = dt, .nattr = 1};
  d.attr[0] = a;
  int64_t v = ir_add_node(t->g, &d, err);
  if (v >= 0) vec_push(t->of, NULL);
  return v;
}

static int64_t literal_of(Trace *t, const dvm_lazy *x, Err *err) {
  bool isint = !ir_dtype_is_float(x->dtype);
  Attr a = {.key = AK_VALUE, .kind = AV_FLOAT, .isint = isint,
            .i = isint ? rt_get_i(x->t->data, x->dtype, 0) : 0, .f = rt_get_f(x->t->data, x->dtype, 0)};
  return literal_node(t, x->dtype, a, err);
}

/* Mark every pending result of t failed with err (the flush could not compute them). */
static void fail_pending(Trace *t, const Err *err) {
  for (uint32_t v = 0; v < t->of.n; v++) {
    dvm_lazy *y = t->of.v[v];
    if (!y || atomic_load_explicit(&y->trace, memory_order_relaxed) != t) continue;
    y->failed = err->code;
    y->why = strdup(err->msg);
    atomic_store_explicit(&y->trace, NULL, memory_order_release);
  }
}

/* Is this thread running a flush (an extern function called by its kernels)? The lazy
 * API refuses to be entered from there: the trace's lock is held. */
static _Thread_local bool in_flush;

static bool reentered(Err *err) {
  if (in_flush)
    ir_err(err, DVM_ERR_USAGE, "the lazy API is not for extern functions that a flush calls");
  return in_flush;
}

/* Flush t (its lock held): the pending values the host holds are computed, the trace
 * is emptied. */
static dvm_status flush_locked(Trace *t, Err *err) {
  if (!t->nops) {
    trace_reset(t);
    return DVM_OK;
  }
  const Graph *g = t->g;
  uint32_t n = g->nodes.n, nouts = 0;
  dvm_status st = DVM_OK;
  if (!vec_reserve(t->outs, n) || !vec_reserve(t->leaves, n) || !vec_reserve(t->res, n) || !vec_reserve(t->serial, n)) {
    st = ir_err(err, DVM_ERR_NOMEM, "out of memory");
    goto done;
  }
  uint32_t *outs = t->outs.v;
  Tensor **leaf = t->leaves.v, **res = t->res.v;
  uint64_t *serial = t->serial.v;
  memset(leaf, 0, n * sizeof *leaf), memset(res, 0, n * sizeof *res), memset(serial, 0, n * sizeof *serial);
  for (uint32_t v = 0; v < n; v++) {
    dvm_lazy *y = t->of.v[v];
    if (!y) continue;
    if (ir_ops[ir_node(g, v)->op].kind == OPK_SOURCE) leaf[v] = y->t, serial[v] = y->serial;
    else if (atomic_load(&y->hosts) > 0) outs[nouts++] = v;
  }
  for (uint32_t i = 0; i < nouts && !st; i++) { /* results' memory: the run writes all of it */
    const dvm_lazy *y = t->of.v[outs[i]];
    size_t bytes = (size_t)rt_numel(y->rank, y->shape) * ir_dtype_size(y->dtype);
    void *data = block_take(t->lz, bytes);
    if (!data || rt_tensor_wrap(y->dtype, y->rank, y->shape, data, &res[i], err)) {
      free(data);
      st = ir_err(err, DVM_ERR_NOMEM, "out of memory for a %zu-byte result", bytes);
    }
  }
  if (nouts && !st) {
    in_flush = true; /* an extern function it calls must not record or flush here */
    st = rt_trace_run(t->lz, &t->canon, g, outs, nouts, leaf, serial, res, err);
    in_flush = false;
    if (!st) atomic_fetch_add(&t->lz->flushes, 1);
  }
  for (uint32_t i = 0; i < nouts; i++) {
    dvm_lazy *y = t->of.v[t->outs.v[i]];
    if (!st) {
      y->t = res[i], y->own = y->spare = true;
      atomic_store_explicit(&y->trace, NULL, memory_order_release);
    } else if (t->res.v[i]) {
      block_give(t->lz, t->res.v[i]->data, tensor_bytes(t->res.v[i]));
      rt_tensor_free(t->res.v[i]);
    }
  }
done:
  if (st) fail_pending(t, err);
  for (uint32_t v = 0; v < n; v++) /* dropped: no longer pending (the host let them go) */
    if (t->of.v[v] && atomic_load_explicit(&t->of.v[v]->trace, memory_order_relaxed) == t)
      atomic_store_explicit(&t->of.v[v]->trace, NULL, memory_order_release);
  trace_reset(t);
  return st;
}

/* x computed, flushing the trace it is pending in (another thread's, or this one's). */
static dvm_status force(dvm_lazy *x, Err *err) {
  Trace *t = atomic_load_explicit(&x->trace, memory_order_acquire);
  if (t && reentered(err)) return err->code;
  if (t) {
    pthread_mutex_lock(&t->lock);
    dvm_status st = atomic_load_explicit(&x->trace, memory_order_acquire) == t ? flush_locked(t, err) : DVM_OK;
    pthread_mutex_unlock(&t->lock);
    if (st && !x->failed) return st;
  }
  if (x->failed) return ir_err(err, x->failed, "%s", x->why ? x->why : "a flush failed");
  return DVM_OK;
}

/* ---- the context's state --------------------------------------------------------------------- */

Lazy *rt_lazy_new(dvm_context *ctx) {
  Lazy *lz = calloc(1, sizeof *lz);
  if (!lz) return NULL;
  if (!(lz->cache = rt_trace_cache_new()) || pthread_key_create(&lz->key, trace_orphan)) {
    rt_trace_cache_free(lz->cache);
    free(lz);
    return NULL;
  }
  lz->ctx = ctx;
  pthread_mutex_init(&lz->lock, NULL);
  pthread_mutex_init(&lz->opt_lock, NULL);
  pthread_mutex_init(&lz->spare_lock, NULL);
  lz->opt = (dvm_lazy_options){DVM_TIER_AUTO, 0, DEFAULT_MAX_OPS, DEFAULT_ENTRIES, DEFAULT_BYTES};
  atomic_init(&lz->max_ops, DEFAULT_MAX_OPS);
  return lz;
}

void rt_lazy_free(Lazy *lz) {
  if (!lz) return;
  pthread_key_delete(lz->key);
  for (Trace *t = lz->traces, *next; t; t = next) next = t->next, trace_free(t);
  rt_trace_cache_free(lz->cache);
  for (int i = 0; i < lz->nspare; i++) free(lz->spare[i]);
  pthread_mutex_destroy(&lz->spare_lock);
  pthread_mutex_destroy(&lz->opt_lock);
  pthread_mutex_destroy(&lz->lock);
  free(lz);
}

static Lazy *lazy_of(dvm_context *ctx, Err *err) {
  Lazy *lz = ctx ? rt_context_lazy(ctx) : NULL;
  if (!lz) ir_err(err, ctx ? DVM_ERR_NOMEM : DVM_ERR_USAGE, ctx ? "out of memory" : "no context");
  return lz;
}

dvm_status dvm_context_set_lazy_options(dvm_context *ctx, const dvm_lazy_options *opt) {
  Err err = {0};
  Lazy *lz = lazy_of(ctx, &err);
  if (!lz) return rt_fail(&err);
  if (!opt || (unsigned)opt->tier > DVM_TIER_REF || opt->threads < 0 || opt->max_ops < 0 ||
      opt->cache_entries < 0 || opt->cache_bytes < 0)
    return ir_err(&err, DVM_ERR_USAGE, "dvm_context_set_lazy_options: a tier, and counts >= 0"), rt_fail(&err);
  pthread_mutex_lock(&lz->opt_lock);
  lz->opt = *opt;
  if (!lz->opt.max_ops) lz->opt.max_ops = DEFAULT_MAX_OPS;
  if (!lz->opt.cache_entries) lz->opt.cache_entries = DEFAULT_ENTRIES;
  if (!lz->opt.cache_bytes) lz->opt.cache_bytes = DEFAULT_BYTES;
  atomic_store(&lz->max_ops, lz->opt.max_ops);
  dvm_lazy_options now = lz->opt;
  pthread_mutex_unlock(&lz->opt_lock);
  rt_trace_cache_trim(lz->cache, now.cache_entries, now.cache_bytes);
  return rt_ok();
}

void dvm_lazy_stats_get(dvm_context *ctx, dvm_lazy_stats *out) {
  memset(out, 0, sizeof *out);
  Err err = {0};
  Lazy *lz = lazy_of(ctx, &err);
  if (!lz) return;
  rt_trace_cache_stats(lz->cache, out);
  out->ops = atomic_load(&lz->ops);
  out->flushes = atomic_load(&lz->flushes);
}

/* ---- values ---------------------------------------------------------------------------------- */

static dvm_lazy *lazy_new(Lazy *lz, DType dt, int rank, const int64_t *shape) {
  dvm_lazy *x = calloc(1, sizeof *x);
  if (!x) return NULL;
  atomic_init(&x->refs, 1);
  atomic_init(&x->hosts, 1);
  x->lz = lz, x->dtype = dt, x->rank = rank;
  if (rank) memcpy(x->shape, shape, (size_t)rank * sizeof *shape);
  return x;
}

static dvm_status wrap(dvm_context *ctx, dvm_tensor *t, bool konst, bool adopt, dvm_lazy **out) {
  static _Atomic uint64_t serials;
  Err err = {0};
  Lazy *lz = lazy_of(ctx, &err);
  *out = NULL;
  if (!lz) return rt_fail(&err);
  if (!t) return ir_err(&err, DVM_ERR_USAGE, "dvm_lazy_wrap: no tensor"), rt_fail(&err);
  if (!(*out = lazy_new(lz, t->dtype, t->rank, t->shape)))
    return ir_err(&err, DVM_ERR_NOMEM, "out of memory"), rt_fail(&err);
  (*out)->t = t;
  (*out)->own = adopt;
  if (konst) (*out)->serial = atomic_fetch_add(&serials, 1) + 1;
  return rt_ok();
}

dvm_status dvm_lazy_wrap(dvm_context *ctx, dvm_tensor *t, dvm_lazy **out) { return wrap(ctx, t, false, false, out); }
dvm_status dvm_lazy_wrap_const(dvm_context *ctx, dvm_tensor *t, dvm_lazy **out) {
  return wrap(ctx, t, true, false, out);
}
dvm_status dvm_lazy_adopt(dvm_context *ctx, dvm_tensor *t, dvm_lazy **out) { return wrap(ctx, t, false, true, out); }

dvm_status dvm_lazy_scalar(dvm_context *ctx, double value, dvm_dtype dt, dvm_lazy **out) {
  Err err = {0};
  Lazy *lz = lazy_of(ctx, &err);
  *out = NULL;
  if (!lz) return rt_fail(&err);
  if ((unsigned)dt >= DT_COUNT) return ir_err(&err, DVM_ERR_USAGE, "dvm_lazy_scalar: bad dtype"), rt_fail(&err);
  double lo = dt == DT_I32 ? -2147483648.0 : dt == DT_BOOL ? 0 : -9223372036854775808.0;
  double end = dt == DT_I32 ? 2147483648.0 : dt == DT_BOOL ? 2 : 9223372036854775808.0; /* past the last */
  if (!ir_dtype_is_float(dt) && !(value >= lo && value < end && value == (double)(int64_t)value))
    return ir_err(&err, DVM_ERR_DTYPE, "dvm_lazy_scalar: %g is not a %s value", value, ir_dtype_name(dt)),
           rt_fail(&err);
  dvm_lazy *x = lazy_new(lz, dt, 0, NULL);
  if (!x || rt_tensor_new(dt, 0, NULL, &x->t, &err)) {
    free(x);
    return ir_err(&err, DVM_ERR_NOMEM, "out of memory"), rt_fail(&err);
  }
  if (ir_dtype_is_float(dt)) rt_set_f(x->t->data, dt, 0, value);
  else rt_set_i(x->t->data, dt, 0, (int64_t)value);
  x->own = x->literal = true;
  *out = x;
  return rt_ok();
}

/* The value id of operand x in t (its lock held): a pending result's own, or an input or
 * literal node for a computed one. */
static int64_t operand_id(Trace *t, dvm_lazy *x, Err *err) {
  if (atomic_load_explicit(&x->trace, memory_order_acquire) == t) return x->value;
  if (x->failed) return ir_err(err, x->failed, "%s", x->why ? x->why : "a flush failed"), -1;
  return x->literal ? literal_of(t, x, err) : leaf_of(t, x, err);
}

/* d's attributes from their text: as parsed the last time the same op had the same
 * text, else parsed (ir_parse_attrs) and remembered. */
static dvm_status attrs_of(Trace *t, const char *text, NodeDraft *d, Err *err) {
  Graph *g = t->g;
  size_t len = strlen(text);
  uint64_t h = XXH3_64bits(text, len) ^ (uint64_t)d->op * 0x9E3779B97F4A7C15ull;
  Memo *m = &t->memo[h % MEMOS];
  if (m->text && m->hash == h && m->op == d->op && m->len == len && !memcmp(m->text, text, len)) {
    d->nattr = m->nattr;
    for (uint32_t i = 0; i < m->nattr; i++) {
      Attr a = m->attr[i];
      if (a.kind == AV_DIM) a.i = ir_dim_const(g, a.i);
      if (a.kind == AV_INTLIST || a.kind == AV_DIMLIST) {
        uint32_t off = g->lists.n;
        for (uint32_t k = 0; k < a.n; k++) {
          int64_t x = m->list[a.off + k];
          vec_push(g->lists, a.kind == AV_DIMLIST ? (int64_t)ir_dim_const(g, x) : x);
        }
        a.off = off;
      }
      d->attr[i] = a;
    }
    return DVM_OK;
  }
  uint32_t syms = g->syms.n;
  dvm_status st = ir_parse_attrs(g, text, d, err);
  if (st || g->syms.n != syms) return st; /* a name in a dim: refused by the caller */
  size_t nlist = 0;
  for (uint32_t i = 0; i < d->nattr; i++) {
    if (d->attr[i].kind == AV_IDENT) return DVM_OK; /* a call's fn: not remembered */
    if (d->attr[i].kind == AV_INTLIST || d->attr[i].kind == AV_DIMLIST) nlist += d->attr[i].n;
  }
  memo_clear(m);
  m->text = malloc(len + 1), m->attr = malloc((d->nattr + 1) * sizeof *m->attr);
  m->list = malloc((nlist + 1) * sizeof *m->list);
  if (!m->text || !m->attr || !m->list) return memo_clear(m), DVM_OK;
  memcpy(m->text, text, len + 1);
  m->len = len, m->hash = h, m->op = (uint16_t)d->op, m->nattr = d->nattr;
  size_t at = 0;
  for (uint32_t i = 0; i < d->nattr; i++) {
    Attr a = d->attr[i];
    if (a.kind == AV_DIM) ir_dim_is_const(g, (Dim)a.i, &a.i);
    if (a.kind == AV_INTLIST || a.kind == AV_DIMLIST) {
      for (uint32_t k = 0; k < a.n; k++) {
        int64_t x = g->lists.v[a.off + k];
        if (a.kind == AV_DIMLIST) ir_dim_is_const(g, (Dim)x, &x);
        m->list[at + k] = x;
      }
      a.off = (uint32_t)at;
      at += a.n;
    }
    m->attr[i] = a;
  }
  return DVM_OK;
}

/* The op's message prefixed with the op and what it was given: "lazy add(f32[3, 4],
 * f32[5]): ..." (t's lock held; d's operands are in t). */
static void name_op(const Trace *t, const NodeDraft *d, Err *err) {
  char shapes[256] = "";
  size_t at = 0;
  for (uint32_t i = 0; i < d->nin && at < sizeof shapes - 40; i++) {
    const Node *n = ir_node(t->g, d->in[i]);
    at += (size_t)snprintf(shapes + at, sizeof shapes - at, "%s%s[", i ? ", " : "", ir_dtype_name((DType)n->dtype));
    for (int a = 0; a < n->rank && at < sizeof shapes - 24; a++) {
      int64_t c = 0;
      ir_dim_is_const(t->g, ir_shape(t->g, d->in[i])[a], &c);
      at += (size_t)snprintf(shapes + at, sizeof shapes - at, "%s%lld", a ? ", " : "", (long long)c);
    }
    at += (size_t)snprintf(shapes + at, sizeof shapes - at, "]");
  }
  Err e = *err;
  ir_err(err, e.code, "lazy %s(%s): %s", ir_ops[d->op].name, shapes, e.msg);
}

/* Record d in t (its lock held): inference at once, a new pending value in *out. A call
 * runs now (its flush); so does a trace that reaches max_ops ops (an error then leaves
 * *out set, failed). */
static dvm_status append(Trace *t, NodeDraft *d, dvm_lazy **out, Err *err) {
  *out = NULL;
  IrMark mark = ir_mark(t->g);
  int64_t v = ir_add_node(t->g, d, err);
  if (v < 0) return t->g->syms.n = mark.syms, name_op(t, d, err), err->code;
  const Node *nd = ir_node(t->g, (uint32_t)v);
  int64_t shape[DVM_MAX_RANK];
  bool known = t->g->syms.n == mark.syms;
  for (int a = 0; a < nd->rank && known; a++) known = ir_dim_is_const(t->g, ir_shape(t->g, (uint32_t)v)[a], &shape[a]);
  if (!known) { /* inference made a symbol of a dim (a reshape's -1 that does not divide) */
    ir_undo(t->g, &mark);
    ir_err(err, DVM_ERR_SHAPE, "%s: its operands do not determine its shape", ir_ops[d->op].name);
    return name_op(t, d, err), err->code;
  }
  dvm_lazy *y = lazy_new(t->lz, (DType)nd->dtype, nd->rank, shape);
  vec_push(t->of, y); /* NULL (no memory): the node stays, unread; the flush drops it */
  if (!y) return ir_err(err, DVM_ERR_NOMEM, "out of memory");
  atomic_init(&y->refs, 2); /* the host's and the trace's */
  y->value = (uint32_t)v;
  atomic_store_explicit(&y->trace, t, memory_order_relaxed);
  t->nops++;
  atomic_fetch_add_explicit(&t->lz->ops, 1, memory_order_relaxed);
  *out = y;
  if (d->op == OP_CALL || t->nops >= (uint32_t)atomic_load_explicit(&t->lz->max_ops, memory_order_relaxed))
    return flush_locked(t, err);
  return DVM_OK;
}

dvm_status dvm_lazy_op(dvm_context *ctx, const char *op, int noperands, dvm_lazy *const *operands,
                       const char *attrs, dvm_lazy **out) {
  Err err = {0};
  *out = NULL;
  Lazy *lz = lazy_of(ctx, &err);
  if (!lz || reentered(&err)) return rt_fail(&err);
  int k = op ? ir_op_lookup(op, strlen(op)) : -1;
  if (k < 0 || ir_ops[k].kind == OPK_SOURCE)
    return ir_err(&err, DVM_ERR_GRAPH, "dvm_lazy_op: unknown op '%s'", op ? op : "(null)"), rt_fail(&err);
  if (noperands < 0 || noperands > 64 || (noperands && !operands))
    return ir_err(&err, DVM_ERR_USAGE, "%s: %d operands", op, noperands), rt_fail(&err);
  Trace *t = my_trace(lz);
  if (!t) return ir_err(&err, DVM_ERR_NOMEM, "out of memory"), rt_fail(&err);
  for (int i = 0; i < noperands; i++) {
    dvm_lazy *x = operands[i];
    if (!x || x->lz != lz)
      return ir_err(&err, DVM_ERR_USAGE, "%s: operand %d is %s", op, i + 1,
                    x ? "a value of another context" : "NULL"),
             rt_fail(&err);
    Trace *xt = atomic_load_explicit(&x->trace, memory_order_acquire);
    if (xt && xt != t && force(x, &err)) return rt_fail(&err); /* another thread's: computed first */
  }
  pthread_mutex_lock(&t->lock);
  NodeDraft d = {.op = (Op)k, .nin = (uint32_t)noperands};
  dvm_status st = DVM_OK;
  for (int i = 0; i < noperands && !st; i++) {
    int64_t u = operand_id(t, operands[i], &err);
    if (u < 0) st = err.code;
    d.in[i] = (uint32_t)u;
  }
  if (!st && attrs && (st = attrs_of(t, attrs, &d, &err))) name_op(t, &d, &err);
  if (!st && t->g->syms.n) /* a trace's dims are integers: a name in a dim is not one */
    st = ir_err(&err, DVM_ERR_SYNTAX, "lazy %s: dims in attributes are integers, '%s' is a name", op,
                ir_s(t->g, t->g->syms.v[0].name));
  t->g->syms.n = 0; /* whatever a failed parse declared */
  if (!st) st = append(t, &d, out, &err);
  pthread_mutex_unlock(&t->lock);
  if (st && *out) dvm_lazy_destroy(*out), *out = NULL; /* recorded, but its flush failed */
  return st ? rt_fail(&err) : rt_ok();
}

dvm_dtype dvm_lazy_dtype(const dvm_lazy *x) { return x->dtype; }
int dvm_lazy_rank(const dvm_lazy *x) { return x->rank; }
const int64_t *dvm_lazy_shape(const dvm_lazy *x) { return x->shape; }

dvm_status dvm_lazy_tensor(dvm_lazy *x, dvm_tensor **out) {
  Err err = {0};
  *out = NULL;
  if (!x) return ir_err(&err, DVM_ERR_USAGE, "dvm_lazy_tensor: NULL"), rt_fail(&err);
  if (force(x, &err)) return rt_fail(&err);
  *out = x->t;
  return rt_ok();
}

dvm_status dvm_lazy_sync(dvm_context *ctx) {
  Err err = {0};
  Lazy *lz = lazy_of(ctx, &err);
  if (!lz || reentered(&err)) return rt_fail(&err);
  Trace *t = pthread_getspecific(lz->key);
  if (!t) return rt_ok();
  pthread_mutex_lock(&t->lock);
  dvm_status st = flush_locked(t, &err);
  pthread_mutex_unlock(&t->lock);
  return st ? rt_fail(&err) : rt_ok();
}

void dvm_lazy_wait(dvm_context *ctx) {
  Err err = {0};
  Lazy *lz = lazy_of(ctx, &err);
  if (lz) rt_trace_cache_wait(lz->cache);
}

void dvm_lazy_destroy(dvm_lazy *x) {
  if (!x) return;
  atomic_fetch_sub(&x->hosts, 1);
  release(x);
}

/* ---- a graph applied to lazy values ------------------------------------------------------------ */

/* Node v of c (finished, bound by b) as a draft in t: operands from val (literals as new
 * literal nodes), dims in attributes evaluated. */
static dvm_status apply_draft(Trace *t, const Graph *c, const Binding *b, uint32_t v, dvm_lazy **val,
                              NodeDraft *d, Err *err) {
  const Node *n = ir_node(c, v);
  *d = (NodeDraft){.op = (Op)n->op, .nin = n->nin, .nattr = n->nattr};
  for (uint32_t i = 0; i < n->nin; i++) {
    uint32_t u = ir_operand(c, v, i);
    const Node *un = ir_node(c, u);
    int64_t id = un->op == OP_LITERAL ? literal_node(t, (DType)un->dtype, c->attrs.v[un->attr], err)
                                      : operand_id(t, val[u], err);
    if (id < 0) return err->code;
    d->in[i] = (uint32_t)id;
  }
  for (uint32_t i = 0; i < n->nattr; i++) {
    Attr a = c->attrs.v[n->attr + i];
    int64_t x;
    if (a.kind == AV_DIM) {
      if (!ir_dim_eval(c, (Dim)a.i, b->sym, &x))
        return ir_errl(err, DVM_ERR_OVERFLOW, c->file, n->line, "%s: a dim overflows int64", ir_ops[n->op].name);
      a.i = ir_dim_const(t->g, x);
    }
    if (a.kind == AV_INTLIST || a.kind == AV_DIMLIST) {
      uint32_t off = t->g->lists.n;
      for (uint32_t k = 0; k < a.n; k++) {
        x = c->lists.v[a.off + k];
        if (a.kind == AV_DIMLIST && !ir_dim_eval(c, (Dim)x, b->sym, &x))
          return ir_errl(err, DVM_ERR_OVERFLOW, c->file, n->line, "%s: a dim overflows int64", ir_ops[n->op].name);
        vec_push(t->g->lists, a.kind == AV_DIMLIST ? (int64_t)ir_dim_const(t->g, x) : x);
      }
      a.off = off;
    }
    if (a.kind == AV_IDENT) a.off = ir_str(t->g, ir_s(c, a.off), strlen(ir_s(c, a.off)));
    d->attr[i] = a;
  }
  return DVM_OK;
}

dvm_status dvm_lazy_apply(dvm_context *ctx, const dvm_graph *g, int nargs, dvm_lazy *const *args,
                          dvm_lazy **outs) {
  Err err = {0};
  Lazy *lz = lazy_of(ctx, &err);
  for (int i = 0; outs && g && i < (int)rt_graph_ir(g)->outputs.n; i++) outs[i] = NULL;
  if (!lz || reentered(&err)) return rt_fail(&err);
  if (!g) return ir_err(&err, DVM_ERR_USAGE, "dvm_lazy_apply: no graph"), rt_fail(&err);
  Graph *c = ir_graph_clone(rt_graph_ir(g));
  if (!c) return ir_err(&err, DVM_ERR_NOMEM, "out of memory"), rt_fail(&err);
  Tensor *hdr = calloc(c->decls.n + 1, sizeof *hdr), **given = calloc(c->nodes.n + 1, sizeof *given);
  dvm_lazy **val = calloc(c->nodes.n + 1, sizeof *val);
  uint32_t *last = NULL;
  Binding b = {0};
  Trace *t = NULL;
  dvm_status st = DVM_OK;
  if (!hdr || !given || !val || !(t = my_trace(lz))) {
    st = ir_err(&err, DVM_ERR_NOMEM, "out of memory");
    goto done;
  }
  if (!c->finished && (st = ir_finish(c, &err))) goto done;
  if (nargs < 0 || (uint32_t)nargs != c->decls.n || (nargs && !args)) {
    st = ir_err(&err, DVM_ERR_USAGE, "dvm_lazy_apply: graph '%s' declares %u inputs and params, %d values given",
                ir_s(c, c->name), c->decls.n, nargs);
    goto done;
  }
  uint32_t ni = 0; /* args: the inputs, then the params */
  for (uint32_t i = 0; i < c->decls.n; i++) ni += ir_node(c, c->decls.v[i])->op == OP_INPUT;
  for (uint32_t i = 0; i < c->decls.n; i++) /* lazy values have shapes, not data, when recorded */
    if (ir_attr(c, c->decls.v[i], AK_VALUES)) {
      const Node *n = ir_node(c, c->decls.v[i]);
      st = ir_errl(&err, DVM_ERR_UNSUPPORTED, c->file, n->line, "input '%s' declares values, which bind "
                   "symbols from its data: lazy graphs take shapes only", ir_s(c, n->name));
      goto done;
    }
  for (uint32_t i = 0, ki = 0, kp = 0; i < c->decls.n; i++) {
    uint32_t v = c->decls.v[i];
    dvm_lazy *x = args[ir_node(c, v)->op == OP_INPUT ? ki++ : ni + kp++];
    if (!x || x->lz != lz) {
      st = ir_err(&err, DVM_ERR_USAGE, "dvm_lazy_apply: the value for '%s' is %s", ir_s(c, ir_node(c, v)->name),
                  x ? "of another context" : "NULL");
      goto done;
    }
    hdr[i] = (Tensor){.dtype = x->dtype, .rank = x->rank};
    memcpy(hdr[i].shape, x->shape, sizeof x->shape);
    given[v] = &hdr[i], val[v] = x;
    Trace *xt = atomic_load_explicit(&x->trace, memory_order_acquire);
    if (xt && xt != t && (st = force(x, &err))) goto done; /* another thread's: computed first */
  }
  if ((st = rt_bind(c, given, NULL, &b, &err))) goto done;
  if (!(last = malloc(c->nodes.n * sizeof *last))) {
    st = ir_err(&err, DVM_ERR_NOMEM, "out of memory");
    goto done;
  }
  for (uint32_t v = 0; v < c->nodes.n; v++) { /* each value's last reader; outputs are kept */
    last[v] = v;
    for (uint32_t i = 0; i < ir_node(c, v)->nin; i++) last[ir_operand(c, v, i)] = v;
  }
  for (uint32_t i = 0; i < c->outputs.n; i++) last[c->outputs.v[i]] = UINT32_MAX;
  pthread_mutex_lock(&t->lock);
  for (uint32_t v = 0; v < c->nodes.n && !st; v++) {
    if (ir_ops[ir_node(c, v)->op].kind == OPK_SOURCE) continue;
    NodeDraft d;
    if (!(st = apply_draft(t, c, &b, v, val, &d, &err))) st = append(t, &d, &val[v], &err);
    for (uint32_t i = 0; !st && i < ir_node(c, v)->nin; i++) { /* let go after the last reader */
      uint32_t u = ir_operand(c, v, i);
      if (last[u] == v && ir_ops[ir_node(c, u)->op].kind != OPK_SOURCE) dvm_lazy_destroy(val[u]), val[u] = NULL;
    }
  }
  pthread_mutex_unlock(&t->lock);
  if (!st)
    for (uint32_t i = 0; i < c->outputs.n; i++) { /* each output one more host reference */
      dvm_lazy *y = val[c->outputs.v[i]];
      atomic_fetch_add(&y->hosts, 1), atomic_fetch_add(&y->refs, 1);
      outs[i] = y;
    }
done:
  for (uint32_t v = 0; val && v < c->nodes.n; v++) /* the op values this call held */
    if (val[v] && ir_ops[ir_node(c, v)->op].kind != OPK_SOURCE) dvm_lazy_destroy(val[v]);
  rt_binding_free(&b);
  free(hdr), free(given), free(val), free(last);
  ir_graph_free(c);
  return st ? rt_fail(&err) : rt_ok();
}
