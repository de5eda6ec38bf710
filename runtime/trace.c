/* runtime/trace.c — what a flush runs: the needed part of a trace, the trace cache, and
 * the symbolic graph a miss compiles (runtime/lazy.h, docs/lazy.md).
 *
 * Canonical form. The nodes a flush's outputs need, renumbered in trace order, written
 * as bytes: per node its op, dtype and operands, every attribute's value (dims as the
 * integers they are in a trace), a literal's value, and for an input its dtype, rank and
 * which of its dims are 1 — not the other dims' values. A param (a constant tensor: a
 * model's weights) keeps its dims, as a graph file's weights do: the kernels that read
 * it are specialized on them (a matmul's packed weight). Two flushes with the same bytes
 * run the same program on inputs that may differ in size; the bytes (with their XXH3
 * hash) are the cache key.
 *
 * Symbolic graph. A miss builds the needed part again as a graph whose input dims are
 * symbols (one per input dim that is not 1: a dim of 1 broadcasts, so it stays structural), so
 * that its inference records what the program assumes of the sizes as constraints. Each
 * node's new constraints are checked at once against the flush's sizes; where inference
 * fails, makes a symbol of its own (a reshape's -1 that does not divide symbolically), gives
 * another shape than the trace at these sizes (squeeze without axes) or records a
 * constraint that does not hold (a slice's end beyond a smaller dim), the symbols of that
 * node's operands are pinned to their values and the graph is built again. The compiled
 * model and its pins are a variant of the entry: a flush takes the first variant (most
 * pins first) whose pins match its sizes, whose run binds and whose outputs have the
 * recorded shapes; when none does, a new variant is built for these sizes.
 *
 * The cache holds entries under a lock, bounded in entries and bytes, least recently used
 * dropped first; an entry being run (users > 0) is unlinked but freed by its last user. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "lazy.h"

/* ---- the canonical form ------------------------------------------------------------------ */

struct Canon {
  VEC(uint8_t) bytes;
  uint32_t *map;         /* per trace value: its canonical id, UINT32_MAX where not needed */
  uint32_t mapcap;
  VEC(uint32_t) nodes;   /* the needed trace values, in order */
  VEC(uint32_t) inputs;  /* the needed input nodes, in order (the model's declarations) */
  uint64_t hash;
};

static void put(Canon *c, const void *p, size_t n) {
  if (!vec_reserve(c->bytes, (uint32_t)n)) ir_oom();
  memcpy(c->bytes.v + c->bytes.n, p, n);
  c->bytes.n += (uint32_t)n;
}
#define PUT(c, x) put(c, &(x), sizeof(x))

static int64_t const_dim(const Graph *g, Dim d) {
  int64_t v = 0;
  ir_dim_is_const(g, d, &v); /* a trace's dims are all constants */
  return v;
}

static void put_attr(Canon *c, const Graph *g, const Attr *a) {
  uint8_t head[3] = {a->key, a->kind, a->isint};
  put(c, head, sizeof head);
  int64_t x;
  switch ((AttrKind)a->kind) {
  case AV_INT:
  case AV_DTYPE: PUT(c, a->i); break;
  case AV_FLOAT: PUT(c, a->i), PUT(c, a->f); break;
  case AV_DIM: x = const_dim(g, (Dim)a->i), PUT(c, x); break;
  case AV_INTLIST:
  case AV_DIMLIST:
    PUT(c, a->n);
    for (uint32_t k = 0; k < a->n; k++) {
      x = g->lists.v[a->off + k];
      if (a->kind == AV_DIMLIST) x = const_dim(g, (Dim)x);
      PUT(c, x);
    }
    break;
  case AV_IDENT: put(c, ir_s(g, a->off), strlen(ir_s(g, a->off)) + 1); break;
  }
}

/* The needed part of tg for outs, in canonical form (c's memory reused from the last). */
static void canon_make(Canon *c, const Graph *tg, const uint32_t *outs, uint32_t nouts) {
  uint32_t n = tg->nodes.n;
  c->bytes.n = c->nodes.n = c->inputs.n = 0;
  if (n > c->mapcap) {
    free(c->map);
    if (!(c->map = malloc(n * sizeof *c->map))) ir_oom();
    c->mapcap = n;
  }
  for (uint32_t v = 0; v < n; v++) c->map[v] = UINT32_MAX;
  for (uint32_t i = 0; i < nouts; i++) c->map[outs[i]] = 0;
  for (uint32_t v = n; v-- > 0;) /* needed: reached from an output */
    if (c->map[v] != UINT32_MAX)
      for (uint32_t i = 0; i < ir_node(tg, v)->nin; i++) c->map[ir_operand(tg, v, i)] = 0;
  for (uint32_t v = 0; v < n; v++) {
    if (c->map[v] == UINT32_MAX) continue;
    c->map[v] = c->nodes.n;
    vec_push(c->nodes, v);
    const Node *nd = ir_node(tg, v);
    uint8_t head[4] = {(uint8_t)nd->op, (uint8_t)(nd->op >> 8), nd->dtype, nd->rank};
    put(c, head, sizeof head);
    if (nd->op == OP_INPUT || nd->op == OP_PARAM) {
      vec_push(c->inputs, v);
      if (nd->op == OP_PARAM) { /* a constant tensor's dims are part of the program */
        for (int k = 0; k < nd->rank; k++) {
          int64_t x = const_dim(tg, ir_shape(tg, v)[k]);
          PUT(c, x);
        }
        continue;
      }
      uint8_t ones = 0;
      for (int k = 0; k < nd->rank; k++) ones |= (uint8_t)((const_dim(tg, ir_shape(tg, v)[k]) == 1) << k);
      PUT(c, ones);
      continue;
    }
    PUT(c, nd->nin);
    for (uint32_t i = 0; i < nd->nin; i++) PUT(c, c->map[ir_operand(tg, v, i)]);
    PUT(c, nd->nattr);
    for (uint32_t i = 0; i < nd->nattr; i++) put_attr(c, tg, &tg->attrs.v[nd->attr + i]);
  }
  PUT(c, nouts);
  for (uint32_t i = 0; i < nouts; i++) PUT(c, c->map[outs[i]]);
  c->hash = XXH3_64bits(c->bytes.v, c->bytes.n);
}

void rt_trace_scratch_free(Canon *c) {
  if (!c) return;
  vec_free(c->bytes);
  vec_free(c->nodes);
  vec_free(c->inputs);
  free(c->map);
  free(c);
}

/* ---- the cache ---------------------------------------------------------------------------- */

/* A dim an input's symbol is pinned to: input (canonical order) and axis, and its value. */
typedef struct Pin {
  uint32_t input;
  uint32_t axis;
  int64_t value;
} Pin;

typedef struct Variant {
  struct Variant *next;
  dvm_model *m;
  Pin *pins;
  uint32_t npins;
  size_t bytes;
  pthread_rwlock_t rw;  /* runs share it; binding params takes it alone */
  uint64_t *bound;      /* per declaration: the constant wrap bound to the param, or 0 */
} Variant;

static void variant_free(Variant *v) {
  dvm_model_destroy(v->m);
  pthread_rwlock_destroy(&v->rw);
  free(v->bound);
  free(v->pins);
  free(v);
}

typedef struct Entry {
  struct Entry *chain;          /* the hash bucket */
  struct Entry *prev, *next;    /* recency, most recent first */
  uint64_t hash;
  uint8_t *key;
  uint32_t keylen;
  Variant *variants;            /* most pins first */
  int users;                    /* flushes running one of its models */
  bool dropped;                 /* unlinked: the last user frees it */
  struct Entry *dead;           /* TraceCache.dead */
} Entry;

enum { BUCKETS = 1024 };

struct TraceCache {
  pthread_mutex_t lock;
  Entry *bucket[BUCKETS];
  Entry *head, *tail;
  Entry *dead;                  /* unlinked and unused: freed after the lock is let go (a
                                   model's destroy may wait for its background compile) */
  int64_t entries, bytes;
  int64_t hits, misses, variants, evictions;
};



TraceCache *rt_trace_cache_new(void) {
  TraceCache *c = calloc(1, sizeof *c);
  if (c) pthread_mutex_init(&c->lock, NULL);
  return c;
}

static void entry_free(Entry *e) {
  for (Variant *v = e->variants, *next; v; v = next) next = v->next, variant_free(v);
  free(e->key);
  free(e);
}

/* Let go of the lock, then free the entries it left dead. */
static void unlock(TraceCache *c) {
  Entry *dead = c->dead;
  c->dead = NULL;
  pthread_mutex_unlock(&c->lock);
  for (Entry *next; dead; dead = next) next = dead->dead, entry_free(dead);
}

/* e has no user and is unlinked: freed when the lock is let go (lock held). */
static void bury(TraceCache *c, Entry *e) { e->dead = c->dead, c->dead = e; }

static size_t entry_bytes(const Entry *e) {
  size_t n = sizeof *e + e->keylen;
  for (const Variant *v = e->variants; v; v = v->next) n += v->bytes;
  return n;
}

/* Unlink e (lock held); freed now unless a flush runs it. */
static void entry_drop(TraceCache *c, Entry *e) {
  Entry **at = &c->bucket[e->hash % BUCKETS];
  while (*at != e) at = &(*at)->chain;
  *at = e->chain;
  *(e->prev ? &e->prev->next : &c->head) = e->next;
  *(e->next ? &e->next->prev : &c->tail) = e->prev;
  c->entries--;
  c->bytes -= (int64_t)entry_bytes(e);
  e->dropped = true;
  if (!e->users) bury(c, e);
}

void rt_trace_cache_free(TraceCache *c) {
  if (!c) return;
  pthread_mutex_lock(&c->lock);
  while (c->head) entry_drop(c, c->head);
  unlock(c);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

static void trim_locked(TraceCache *c, int64_t max_entries, int64_t max_bytes) {
  Entry *e = c->tail;
  while (e && (c->entries > max_entries || c->bytes > max_bytes)) {
    Entry *prev = e->prev;
    if (e != c->head) { /* the entry just used stays, whatever its size */
      entry_drop(c, e);
      c->evictions++;
    }
    e = prev;
  }
}

void rt_trace_cache_trim(TraceCache *c, int64_t max_entries, int64_t max_bytes) {
  pthread_mutex_lock(&c->lock);
  trim_locked(c, max_entries, max_bytes);
  unlock(c);
}

void rt_trace_cache_stats(TraceCache *c, dvm_lazy_stats *out) {
  pthread_mutex_lock(&c->lock);
  out->hits = c->hits, out->misses = c->misses, out->variants = c->variants;
  out->evictions = c->evictions, out->entries = c->entries, out->bytes = c->bytes;
  pthread_mutex_unlock(&c->lock);
}

/* Do v's pins hold for these inputs? */
static bool pins_match(const Variant *v, const Graph *tg, const Canon *cn) {
  for (uint32_t i = 0; i < v->npins; i++) {
    const Pin *p = &v->pins[i];
    if (const_dim(tg, ir_shape(tg, cn->inputs.v[p->input])[p->axis]) != p->value) return false;
  }
  return true;
}

/* The entry for cn (lock held), or NULL. */
static Entry *find(TraceCache *c, const Canon *cn) {
  for (Entry *e = c->bucket[cn->hash % BUCKETS]; e; e = e->chain)
    if (e->hash == cn->hash && e->keylen == cn->bytes.n && !memcmp(e->key, cn->bytes.v, e->keylen))
      return e;
  return NULL;
}

static void touch(TraceCache *c, Entry *e) {
  if (c->head == e) return;
  *(e->prev ? &e->prev->next : &c->head) = e->next;
  *(e->next ? &e->next->prev : &c->tail) = e->prev;
  e->prev = NULL, e->next = c->head;
  *(c->head ? &c->head->prev : &c->tail) = e;
  c->head = e;
}

/* ---- the symbolic graph ------------------------------------------------------------------- */

typedef struct Build {
  Graph *g;
  VEC(int64_t) symval;   /* per symbol: the flush's value */
  VEC(uint32_t) symdim;  /* per symbol: input << 8 | axis */
  VEC(Pin) pins;
} Build;

static bool pinned(const Build *b, uint32_t input, uint32_t axis) {
  for (uint32_t i = 0; i < b->pins.n; i++)
    if (b->pins.v[i].input == input && b->pins.v[i].axis == axis) return true;
  return false;
}

/* Do the constraints from `from` on hold at the flush's sizes? */
static bool constraints_hold(const Build *b, uint32_t from) {
  const Graph *g = b->g;
  for (uint32_t i = from; i < g->cons.n; i++) {
    const Constraint *k = &g->cons.v[i];
    int64_t x, y;
    if (!ir_dim_eval(g, k->a, b->symval.v, &x) || !ir_dim_eval(g, k->b, b->symval.v, &y)) return false;
    if (k->kind == CON_EQ ? x != y : x > y) return false;
  }
  return true;
}

/* Does value v of the graph being built have trace value u's dtype and dims at the
 * flush's sizes? (Inference that branches on a size, such as squeeze without axes
 * dropping a dim that is 1 here, gives another shape symbolically.) */
static bool same_shape(const Build *b, const Graph *tg, uint32_t u, uint32_t v) {
  const Node *tn = ir_node(tg, u), *n = ir_node(b->g, v);
  if (tn->rank != n->rank || tn->dtype != n->dtype) return false;
  for (int k = 0; k < n->rank; k++) {
    int64_t x;
    if (!ir_dim_eval(b->g, ir_shape(b->g, v)[k], b->symval.v, &x) || x != const_dim(tg, ir_shape(tg, u)[k]))
      return false;
  }
  return true;
}

/* Pin the symbols node u's operands use (all symbols if they use none unpinned); false
 * when nothing is left to pin. */
static bool pin_more(Build *b, const Graph *tg, const Canon *cn, const NodeDraft *d) {
  uint32_t before = b->pins.n;
  for (int pass = 0; pass < 2 && b->pins.n == before; pass++)
    for (uint32_t s = 0; s < b->symdim.n; s++) { /* the inputs' symbols (not inference's) */
      bool use = pass == 1;
      for (uint32_t i = 0; i < d->nin && !use; i++) {
        const Node *on = ir_node(b->g, d->in[i]);
        for (int k = 0; k < on->rank && !use; k++) {
          DimTerm t[DIM_MAX_TERMS];
          uint32_t nt = ir_dim_terms(b->g, ir_shape(b->g, d->in[i])[k], t);
          for (uint32_t j = 0; j < nt && !use; j++)
            for (int q = 0; q < t[j].deg; q++) use |= t[j].sym[q] == s;
        }
      }
      uint32_t input = b->symdim.v[s] >> 8, axis = b->symdim.v[s] & 0xff;
      if (!use || pinned(b, input, axis)) continue;
      Pin p = {input, axis, const_dim(tg, ir_shape(tg, cn->inputs.v[input])[axis])};
      vec_push(b->pins, p);
    }
  return b->pins.n > before;
}

/* Node u of the trace as a draft for b->g (attributes' lists and dims moved over). */
static void draft(Build *b, const Graph *tg, const Canon *cn, uint32_t u, NodeDraft *d, char *name) {
  const Node *nd = ir_node(tg, u);
  Graph *g = b->g;
  *d = (NodeDraft){.op = (Op)nd->op, .nin = nd->nin, .nattr = nd->nattr, .dtype = (DType)nd->dtype};
  if (nd->op != OP_LITERAL) {
    snprintf(name, 24, "v%u", cn->map[u]);
    d->name = name, d->name_len = strlen(name);
  }
  for (uint32_t i = 0; i < nd->nin; i++) d->in[i] = cn->map[ir_operand(tg, u, i)];
  for (uint32_t i = 0; i < nd->nattr; i++) {
    Attr a = tg->attrs.v[nd->attr + i];
    if (a.kind == AV_DIM) a.i = ir_dim_const(g, const_dim(tg, (Dim)a.i));
    if (a.kind == AV_INTLIST || a.kind == AV_DIMLIST) {
      uint32_t off = g->lists.n;
      for (uint32_t k = 0; k < a.n; k++) {
        int64_t x = tg->lists.v[a.off + k];
        vec_push(g->lists, a.kind == AV_DIMLIST ? (int64_t)ir_dim_const(g, const_dim(tg, (Dim)x)) : x);
      }
      a.off = off;
    }
    if (a.kind == AV_IDENT) a.off = ir_str(g, ir_s(tg, a.off), strlen(ir_s(tg, a.off)));
    d->attr[i] = a;
  }
}

/* One attempt: the graph with b->pins; false (and *fail set) where a node fails or breaks
 * a constraint at these sizes. */
static bool build_once(Build *b, const Graph *tg, const Canon *cn, Err *err, bool *stuck) {
  Graph *g = b->g;
  *stuck = false;
  for (uint32_t j = 0; j < cn->nodes.n; j++) {
    uint32_t u = cn->nodes.v[j];
    const Node *nd = ir_node(tg, u);
    char name[24];
    NodeDraft d;
    if (nd->op == OP_INPUT || nd->op == OP_PARAM) {
      uint32_t input = (uint32_t)(b->g->decls.n);
      snprintf(name, sizeof name, "x%u", input);
      d = (NodeDraft){.op = (Op)nd->op, .name = name, .name_len = strlen(name),
                      .dtype = (DType)nd->dtype, .rank = nd->rank};
      for (int k = 0; k < nd->rank; k++) {
        int64_t c = const_dim(tg, ir_shape(tg, u)[k]);
        if (c == 1 || nd->op == OP_PARAM || pinned(b, input, (uint32_t)k)) {
          d.shape[k] = ir_dim_const(g, c);
          continue;
        }
        char sn[32];
        snprintf(sn, sizeof sn, "s%u_%d", input, k);
        uint32_t s = ir_sym_get(g, sn, strlen(sn), 0);
        vec_push(b->symval, c);
        vec_push(b->symdim, input << 8 | (uint32_t)k);
        d.shape[k] = ir_dim_sym(g, s);
      }
      if (ir_add_node(g, &d, err) < 0) return false; /* cannot fail: dims are fresh */
      continue;
    }
    draft(b, tg, cn, u, &d, name);
    uint32_t from = g->cons.n;
    Err local = {0};
    int64_t v = ir_add_node(g, &d, &local);
    if (v < 0 || g->syms.n != b->symval.n || !constraints_hold(b, from) || !same_shape(b, tg, u, (uint32_t)v)) {
      if (!pin_more(b, tg, cn, &d)) {
        *stuck = true;
        *err = local.code ? local : *err;
        if (!local.code) ir_err(err, DVM_ERR_RUNTIME, "lazy: the trace's %s does not hold at its sizes", ir_ops[d.op].name);
      }
      return false;
    }
  }
  return true;
}

/* The symbolic graph of cn at the flush's sizes, and its pins. */
static dvm_status build(const Graph *tg, const Canon *cn, const uint32_t *outs, uint32_t nouts,
                        Graph **out, Pin **pins, uint32_t *npins, Err *err) {
  Build b = {0};
  *out = NULL;
  for (;;) {
    b.g = ir_graph_new("lazy trace");
    if (!b.g) return ir_err(err, DVM_ERR_NOMEM, "out of memory");
    b.symval.n = b.symdim.n = 0;
    bool stuck;
    if (build_once(&b, tg, cn, err, &stuck)) break;
    ir_graph_free(b.g);
    if (stuck) {
      vec_free(b.symval), vec_free(b.symdim), vec_free(b.pins);
      return err->code ? err->code : DVM_ERR_RUNTIME;
    }
  }
  for (uint32_t i = 0; i < nouts; i++) vec_push(b.g->outputs, cn->map[outs[i]]);
  vec_free(b.symval), vec_free(b.symdim);
  *out = b.g;
  *pins = b.pins.v, *npins = b.pins.n;
  return DVM_OK;
}

/* A new variant for cn at these sizes: built, compiled. */
static dvm_status variant_new(Lazy *lz, const dvm_lazy_options *opt, const Graph *tg, const Canon *cn,
                              const uint32_t *outs, uint32_t nouts, Variant **out, Err *err) {
  Graph *g;
  Pin *pins = NULL;
  uint32_t npins = 0;
  *out = NULL;
  dvm_status st = build(tg, cn, outs, nouts, &g, &pins, &npins, err);
  if (st) return st;
  dvm_graph dg = {.ir = g, .ctx = lz->ctx};
  dvm_compile_options o = {opt->tier, opt->threads};
  dvm_model *m;
  if ((st = dvm_model_compile(lz->ctx, &dg, &o, &m))) {
    ir_graph_free(g);
    free(pins);
    return ir_err(err, st, "%s", dvm_last_error());
  }
  ir_graph_free(g);
  Variant *v = calloc(1, sizeof *v);
  uint64_t *bound = calloc(cn->inputs.n + 1, sizeof *bound);
  if (!v || !bound) {
    dvm_model_destroy(m);
    free(pins), free(v), free(bound);
    return ir_err(err, DVM_ERR_NOMEM, "out of memory");
  }
  pthread_rwlock_init(&v->rw, NULL);
  v->m = m, v->pins = pins, v->npins = npins, v->bound = bound;
  v->bytes = rt_model_bytes(m) + npins * sizeof *pins;
  *out = v;
  return DVM_OK;
}

/* Put v into e's variants, most pins first (lock held). */
static void variant_add(TraceCache *c, Entry *e, Variant *v) {
  Variant **at = &e->variants;
  while (*at && (*at)->npins > v->npins) at = &(*at)->next;
  v->next = *at, *at = v;
  if (!e->dropped) c->bytes += (int64_t)v->bytes;
}

/* ---- the run ------------------------------------------------------------------------------- */

/* Run v on the leaves (serial[u]: leaf u's constant wrap). Runs share the variant's lock;
 * where the wraps bound last are others, the params are bound (packed again) and the run
 * made under it taken alone. */
static dvm_status run_variant(Variant *v, const Canon *cn, Tensor *const *leaf, const uint64_t *serial,
                              Tensor *const *results, Err *err) {
  Tensor *few[16] = {0}, **decl = cn->inputs.n <= 16 ? few : malloc(cn->inputs.n * sizeof *decl);
  if (!decl) return ir_err(err, DVM_ERR_NOMEM, "out of memory");
  for (uint32_t i = 0; i < cn->inputs.n; i++) decl[i] = leaf[cn->inputs.v[i]];
  dvm_status st = DVM_OK;
  pthread_rwlock_rdlock(&v->rw);
  bool bound = true;
  for (uint32_t i = 0; i < cn->inputs.n && bound; i++) bound = v->bound[i] == serial[cn->inputs.v[i]];
  if (!bound) { /* bind (and pack) them, then run while no other run can rebind them */
    pthread_rwlock_unlock(&v->rw);
    pthread_rwlock_wrlock(&v->rw);
    for (uint32_t i = 0; i < cn->inputs.n && !st; i++) {
      uint64_t s = serial[cn->inputs.v[i]];
      if (v->bound[i] == s) continue;
      char name[24];
      snprintf(name, sizeof name, "x%u", i);
      if (!(st = dvm_model_set_param(v->m, name, decl[i]))) v->bound[i] = s;
    }
  }
  if (!st) st = rt_model_run_decl(v->m, decl, results);
  pthread_rwlock_unlock(&v->rw);
  if (decl != few) free(decl);
  if (st == DVM_ERR_USAGE) /* its outputs' shapes here are not those recorded: not this variant */
    return ir_err(err, DVM_ERR_SHAPE, "lazy: the compiled trace gives other shapes than recorded: %s",
                  dvm_last_error());
  return st ? ir_err(err, st, "%s", dvm_last_error()) : DVM_OK;
}

void rt_trace_cache_wait(TraceCache *c) {
  pthread_mutex_lock(&c->lock);
  size_t n = 0, k = 0;
  for (Entry *e = c->head; e; e = e->next) {
    n++;
    for (Variant *v = e->variants; v; v = v->next) k++;
  }
  Entry **held = malloc((n + 1) * sizeof *held); /* held while this waits for their models */
  dvm_model **models = malloc((k + 1) * sizeof *models);
  n = k = 0;
  for (Entry *e = c->head; e && held && models; e = e->next) {
    e->users++, held[n++] = e;
    for (Variant *v = e->variants; v; v = v->next) models[k++] = v->m;
  }
  pthread_mutex_unlock(&c->lock);
  for (size_t i = 0; i < k; i++) dvm_model_wait(models[i]);
  pthread_mutex_lock(&c->lock);
  for (size_t i = 0; i < n; i++)
    if (!--held[i]->users && held[i]->dropped) bury(c, held[i]);
  unlock(c);
  free(held), free(models);
}

/* Do v and w pin the same dims to the same values? */
static bool same_pins(const Variant *v, const Variant *w) {
  return v->npins == w->npins && (!v->npins || !memcmp(v->pins, w->pins, v->npins * sizeof *v->pins));
}

/* v's bytes measured again after a run (its plans, arenas and packed weights are made by
 * runs), in e's and the cache's totals (lock held). */
static void remeasure(TraceCache *c, Entry *e, Variant *v, size_t bytes) {
  if (!e->dropped) c->bytes += (int64_t)bytes - (int64_t)v->bytes;
  v->bytes = bytes;
}

dvm_status rt_trace_run(Lazy *lz, Canon **scratch, const Graph *tg, const uint32_t *outs, uint32_t nouts,
                        Tensor *const *leaf, const uint64_t *serial, Tensor *const *results, Err *err) {
  TraceCache *c = lz->cache;
  Canon *cp = *scratch ? *scratch : (*scratch = calloc(1, sizeof **scratch));
  if (!cp) return ir_err(err, DVM_ERR_NOMEM, "out of memory");
  pthread_mutex_lock(&lz->opt_lock);
  dvm_lazy_options opt = lz->opt;
  pthread_mutex_unlock(&lz->opt_lock);
  Canon cn = *cp; /* moved back when done */
  canon_make(&cn, tg, outs, nouts);
  dvm_status st = DVM_OK;
  Variant *ran = NULL, *spare = NULL;
  pthread_mutex_lock(&c->lock);
  Entry *e = find(c, &cn);
  if (e) touch(c, e), e->users++; /* held: not freed while this flush runs it */
  for (Variant *v = e ? e->variants : NULL; v; v = v->next) {
    if (!pins_match(v, tg, &cn)) continue;
    pthread_mutex_unlock(&c->lock);
    st = run_variant(v, &cn, leaf, serial, results, err);
    pthread_mutex_lock(&c->lock);
    if (st == DVM_ERR_SHAPE || st == DVM_ERR_OVERFLOW) { /* its binding does not hold here */
      st = DVM_OK;
      continue;
    }
    if (!st) ran = v, c->hits++;
    break;
  }
  pthread_mutex_unlock(&c->lock);
  if (!ran && !st) { /* a miss: compile the trace at these sizes, run it, keep it */
    Variant *nv;
    if ((st = variant_new(lz, &opt, tg, &cn, outs, nouts, &nv, err))) goto release;
    st = run_variant(nv, &cn, leaf, serial, results, err);
    pthread_mutex_lock(&c->lock);
    c->misses++;
    if (!e && (e = find(c, &cn))) touch(c, e), e->users++; /* made meanwhile by another thread */
    if (e) {
      for (Variant *v = e->variants; v && !spare; v = v->next)
        if (same_pins(v, nv)) spare = nv; /* another thread compiled the same meanwhile */
      if (!spare) c->variants += e->variants != NULL, variant_add(c, e, nv), ran = nv;
    } else if ((e = calloc(1, sizeof *e)) && (e->key = malloc(cn.bytes.n ? cn.bytes.n : 1))) {
      memcpy(e->key, cn.bytes.v, cn.bytes.n);
      e->keylen = cn.bytes.n, e->hash = cn.hash, e->users = 1;
      e->chain = c->bucket[e->hash % BUCKETS], c->bucket[e->hash % BUCKETS] = e;
      e->next = c->head, *(c->head ? &c->head->prev : &c->tail) = e, c->head = e;
      c->entries++;
      c->bytes += (int64_t)entry_bytes(e);
      variant_add(c, e, nv), ran = nv;
    } else { /* out of memory for the entry: the results stand, the model is not kept */
      free(e);
      e = NULL;
      spare = nv;
    }
    pthread_mutex_unlock(&c->lock);
    if (st) ran = NULL;
  }
release:;
  size_t bytes = ran ? rt_model_bytes(ran->m) + ran->npins * sizeof *ran->pins : 0;
  pthread_mutex_lock(&c->lock);
  if (ran) remeasure(c, e, ran, bytes);
  if (e && !--e->users && e->dropped) bury(c, e);
  trim_locked(c, opt.cache_entries, opt.cache_bytes);
  unlock(c);
  if (spare) variant_free(spare);
  *cp = cn;
  return st;
}
