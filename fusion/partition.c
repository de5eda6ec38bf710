/* fusion/partition.c — a finished Graph into Kernels, on symbolic shapes alone.
 *
 * Nodes fall in five classes:
 *   source   input, param (kernel inputs) and literal (a constant inside kernels)
 *   view     layout ops (reshape, transpose, broadcast_to, slice, concat, squeeze,
 *            unsqueeze, gather) and generators (full, arange): index maps, inlined into
 *            every kernel that reads them, so they never force a copy. A view that is a
 *            graph output and read by no kernel gets a vector kernel of its own.
 *   elem     unary, binary, select, clip, cast
 *   reduce   reductions and normalizations (softmax, layernorm, rmsnorm, ...)
 *   matmul / extern
 *
 * Clustering walks the graph in order. A node may join the cluster of one of its direct
 * (non-view) operands when the shapes allow (fits()): elem into a vector or row cluster
 * whose domain its result equals (or, for row, the domain with the reduced axes), or into
 * a mix cluster as epilogue when its result is the matmul's result shape; a reduction
 * into a vector cluster whose domain is its input (the cluster becomes a row kernel) or a
 * row cluster with the same domain and axes. Several fitting operand clusters are merged
 * with it. A join is refused if it would make a cycle between kernels, or if the node
 * reads a member of the cluster through a view (a cross-element dependency). Matmul
 * starts a mix cluster, extern its own: a call reads its operands from memory (views it
 * reads get a copy kernel, as output views do) and always writes its result (the function
 * is called even when nothing reads it, as the reference executor calls it).
 *
 * Then: members (with inlined views), inputs and materialized outputs per kernel, and
 * dispatch levels (a kernel runs one level after the latest kernel it reads from; kernels
 * of one level have no path between them and form one stacked dispatch). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fusion.h"

typedef enum Class { C_SOURCE, C_VIEW, C_ELEM, C_REDUCE, C_MATMUL, C_EXTERN } Class;

typedef struct Cluster {
  KernelKind kind;
  uint32_t domain; /* value defining the iteration domain */
  uint32_t axes;   /* row: reduced axes of the domain */
  uint32_t parent; /* union-find for merges */
  VEC(uint32_t) nodes;
} Cluster;

typedef struct Ctx {
  const Graph *g;
  Partition *p;
  VEC(Cluster) cl;
  uint32_t *cluster_of; /* per node: cluster, UINT32_MAX for sources and views */
  uint32_t *mark;       /* scratch for reachability */
  uint32_t stamp;
  uint8_t *prologue;    /* per node: a normalization inlined into the matmuls that read it */
  uint8_t *packed;      /* per node: a gathering view a matmul packs more than once (below) */
  uint8_t *indices;     /* per node: a view a gather reads as its indices (mark_indices) */
} Ctx;

static Class classify(const Graph *g, uint32_t v) {
  Op op = (Op)ir_node(g, v)->op;
  switch (ir_ops[op].kind) {
  case OPK_SOURCE: return C_SOURCE;
  case OPK_LAYOUT:
  case OPK_CONST: return C_VIEW;
  case OPK_UNARY:
  case OPK_BINARY:
  case OPK_ELEMENT: return C_ELEM;
  case OPK_REDUCE:
  case OPK_NORM: return C_REDUCE;
  case OPK_MATMUL: return C_MATMUL;
  case OPK_EXTERN: return C_EXTERN;
  }
  return C_EXTERN;
}

/* A node's class in the partition: a prologue normalization is inlined like a view. */
static Class kind_of(const Ctx *c, uint32_t v) { return c->prologue[v] ? C_VIEW : classify(c->g, v); }

static bool same_shape(const Graph *g, uint32_t a, uint32_t b) {
  const Node *x = ir_node(g, a), *y = ir_node(g, b);
  return x->rank == y->rank &&
         !memcmp(ir_shape(g, a), ir_shape(g, b), x->rank * sizeof(Dim));
}

/* Reduced axes of a reduction/normalization node over its input's dims. */
static uint32_t reduce_axes(const Graph *g, uint32_t v) {
  uint32_t in = ir_operand(g, v, 0);
  int r = ir_node(g, in)->rank;
  Op op = (Op)ir_node(g, v)->op;
  uint32_t m = 0;
  switch (op) {
  case OP_SOFTMAX:
  case OP_LOG_SOFTMAX: return 1u << ir_axis(ir_attr_int(g, v, AK_AXIS, -1), r);
  case OP_LAYERNORM:
    for (int a = ir_axis(ir_attr_int(g, v, AK_AXIS, -1), r); a < r; a++) m |= 1u << a;
    return m;
  case OP_RMSNORM: return 1u << (r - 1);
  case OP_ARGMAX: return 1u << ir_axis(ir_attr_int(g, v, AK_AXIS, 0), r);
  default: {
    const Attr *a = ir_attr(g, v, AK_AXES);
    if (!a) return r ? (uint32_t)((1ull << r) - 1) : 0;
    for (uint32_t i = 0; i < a->n; i++) m |= 1u << ir_axis(g->lists.v[a->off + i], r);
    return m;
  }
  }
}

/* Is value v's shape the domain with `axes` removed or kept as 1? */
static bool is_reduced_shape(const Graph *g, uint32_t v, uint32_t domain, uint32_t axes) {
  const Node *n = ir_node(g, v), *d = ir_node(g, domain);
  const Dim *s = ir_shape(g, v), *ds = ir_shape(g, domain);
  bool keep = n->rank == d->rank;
  int k = 0;
  for (int i = 0; i < d->rank; i++) {
    if (axes & (1u << i)) {
      if (keep) {
        int64_t c;
        if (!ir_dim_is_const(g, s[k], &c) || c != 1) return false;
        k++;
      }
      continue;
    }
    if (k >= n->rank || s[k] != ds[i]) return false;
    k++;
  }
  return k == n->rank;
}

static uint32_t find(Ctx *c, uint32_t x) {
  while (c->cl.v[x].parent != x) x = c->cl.v[x].parent = c->cl.v[c->cl.v[x].parent].parent;
  return x;
}

static uint32_t cluster_of(Ctx *c, uint32_t v) {
  return c->cluster_of[v] == UINT32_MAX ? UINT32_MAX : find(c, c->cluster_of[v]);
}

/* Clusters value v depends on directly, looking through views; calls f for each. */
static void deps_of_value(Ctx *c, uint32_t v, void (*f)(Ctx *, uint32_t, void *), void *arg) {
  Class k = kind_of(c, v);
  if (k == C_SOURCE) return;
  if (k == C_VIEW) {
    for (uint32_t i = 0; i < ir_node(c->g, v)->nin; i++) deps_of_value(c, ir_operand(c->g, v, i), f, arg);
    return;
  }
  f(c, cluster_of(c, v), arg);
}

typedef struct Reach {
  uint32_t target;
  bool found;
  VEC(uint32_t) stack;
} Reach;

static void push_dep(Ctx *c, uint32_t k, void *arg) {
  Reach *r = arg;
  if (k == r->target) {
    r->found = true;
    return;
  }
  if (c->mark[k] == c->stamp) return;
  c->mark[k] = c->stamp;
  vec_push(r->stack, k);
}

/* Does cluster `from` depend (transitively) on cluster `to`? With `indirect`, only paths
 * through some third cluster count (merging from and to is then still acyclic otherwise). */
static bool reaches(Ctx *c, uint32_t from, uint32_t to, bool indirect) {
  Reach r = {.target = to};
  c->stamp++;
  c->mark[from] = c->stamp;
  Cluster *f = &c->cl.v[from];
  for (uint32_t i = 0; i < f->nodes.n && !r.found; i++) {
    uint32_t v = f->nodes.v[i];
    for (uint32_t j = 0; j < ir_node(c->g, v)->nin; j++) {
      if (indirect) { /* first step must not go straight to `to` */
        Reach tmp = {.target = to};
        deps_of_value(c, ir_operand(c->g, v, j), push_dep, &tmp);
        for (uint32_t q = 0; q < tmp.stack.n; q++) vec_push(r.stack, tmp.stack.v[q]);
        vec_free(tmp.stack);
      } else {
        deps_of_value(c, ir_operand(c->g, v, j), push_dep, &r);
      }
    }
  }
  while (r.stack.n && !r.found) {
    Cluster *k = &c->cl.v[r.stack.v[--r.stack.n]];
    for (uint32_t i = 0; i < k->nodes.n && !r.found; i++)
      for (uint32_t j = 0; j < ir_node(c->g, k->nodes.v[i])->nin && !r.found; j++)
        deps_of_value(c, ir_operand(c->g, k->nodes.v[i], j), push_dep, &r);
  }
  vec_free(r.stack);
  return r.found;
}

/* Does every operand of full-shaped node v that row cluster x computes in its reduced
 * shape (rank below the domain's) broadcast onto kept axes? Right-aligned with the domain,
 * each of its dims must fall on an axis the cluster keeps, or be 1: [N] reduced over the
 * last axis of [N, N] and added to it lines up with the reduced axis — each row would
 * need every other row's sum — so that add cannot join. */
static bool reads_kept(Ctx *c, uint32_t v, uint32_t x) {
  const Graph *g = c->g;
  const Cluster *cl = &c->cl.v[x];
  int r = ir_node(g, cl->domain)->rank;
  for (uint32_t i = 0; i < ir_node(g, v)->nin; i++) {
    uint32_t u = ir_operand(g, v, i);
    int n = ir_node(g, u)->rank;
    if (n >= r || kind_of(c, u) == C_SOURCE || kind_of(c, u) == C_VIEW || cluster_of(c, u) != x) continue;
    for (int t = 0; t < n; t++) {
      int64_t one;
      bool bcast = ir_dim_is_const(g, ir_shape(g, u)[t], &one) && one == 1;
      if (!bcast && (cl->axes >> (t + r - n) & 1)) return false;
    }
  }
  return true;
}

/* Would the members of a and b, one kernel, read each other's reduced values on kept
 * axes only (reads_kept, for every full-shaped member of the one against a row cluster
 * the other)? */
static bool merge_reads_kept(Ctx *c, uint32_t a, uint32_t b) {
  for (int side = 0; side < 2; side++) {
    uint32_t row = side ? b : a, other = side ? a : b;
    if (c->cl.v[row].kind != KK_ROW) continue;
    const Cluster *o = &c->cl.v[other];
    for (uint32_t i = 0; i < o->nodes.n; i++) {
      uint32_t w = o->nodes.v[i]; /* full-shaped members: the reduced ones line up with the kept axes */
      if (same_shape(c->g, w, c->cl.v[row].domain) && !reads_kept(c, w, row)) return false;
    }
  }
  return true;
}

/* Can node v (class k) join cluster x on shapes alone? */
static bool fits(Ctx *c, uint32_t v, Class k, uint32_t x) {
  const Graph *g = c->g;
  Cluster *cl = &c->cl.v[x];
  if (k == C_ELEM) {
    if (cl->kind == KK_VECTOR || cl->kind == KK_MIX) return same_shape(g, v, cl->domain);
    if (cl->kind == KK_ROW)
      return (same_shape(g, v, cl->domain) && reads_kept(c, v, x)) || is_reduced_shape(g, v, cl->domain, cl->axes);
    return false;
  }
  if (k == C_REDUCE) {
    uint32_t in = ir_operand(g, v, 0);
    if (cl->kind == KK_VECTOR) return same_shape(g, in, cl->domain);
    if (cl->kind == KK_ROW) return same_shape(g, in, cl->domain) && reduce_axes(g, v) == cl->axes;
  }
  return false;
}

/* Can clusters a and b (both fitting v) become one kernel kind? */
static bool compatible(Ctx *c, uint32_t a, uint32_t b) {
  Cluster *x = &c->cl.v[a], *y = &c->cl.v[b];
  if (x->kind == KK_MIX || y->kind == KK_MIX || x->kind == KK_EXTERN || y->kind == KK_EXTERN)
    return false;
  if (!same_shape(c->g, x->domain, y->domain)) return false;
  return x->kind != KK_ROW || y->kind != KK_ROW || x->axes == y->axes;
}

static uint32_t new_cluster(Ctx *c, KernelKind kind, uint32_t domain, uint32_t axes) {
  Cluster k = {.kind = kind, .domain = domain, .axes = axes, .parent = c->cl.n};
  vec_push(c->cl, k);
  return c->cl.n - 1;
}

static void add_node(Ctx *c, uint32_t x, uint32_t v) {
  vec_push(c->cl.v[x].nodes, v);
  c->cluster_of[v] = x;
}

/* Merge b into a (a row kind wins over vector). */
static void merge(Ctx *c, uint32_t a, uint32_t b) {
  Cluster *x = &c->cl.v[a], *y = &c->cl.v[b];
  if (y->kind == KK_ROW) x->kind = KK_ROW, x->axes = y->axes;
  for (uint32_t i = 0; i < y->nodes.n; i++) vec_push(x->nodes, y->nodes.v[i]);
  vec_free(y->nodes);
  y->parent = a;
}

typedef struct Seen {
  uint32_t k[64];
  uint32_t n;
} Seen;

static void collect(Ctx *c, uint32_t k, void *arg) {
  Seen *s = arg;
  for (uint32_t i = 0; i < s->n; i++)
    if (s->k[i] == k) return;
  if (s->n < 64) s->k[s->n++] = k;
}

/* Place node v. */
static void place(Ctx *c, uint32_t v) {
  const Graph *g = c->g;
  Class k = kind_of(c, v);
  const Node *n = ir_node(g, v);
  if (k == C_SOURCE || k == C_VIEW) return;
  if (k == C_MATMUL || k == C_EXTERN) {
    add_node(c, new_cluster(c, k == C_MATMUL ? KK_MIX : KK_EXTERN, v, 0), v);
    return;
  }
  /* candidates: clusters of direct operands that fit; `all`: every cluster v reads */
  Seen cand = {0}, all = {0}, viewed = {0};
  for (uint32_t i = 0; i < n->nin; i++) {
    uint32_t u = ir_operand(g, v, i);
    Class ku = kind_of(c, u);
    if (ku == C_VIEW) deps_of_value(c, u, collect, &viewed);
    deps_of_value(c, u, collect, &all);
    if (ku == C_ELEM || ku == C_REDUCE || ku == C_MATMUL) {
      uint32_t x = cluster_of(c, u);
      if (fits(c, v, k, x)) collect(c, x, &cand);
    }
  }
  uint32_t chosen = UINT32_MAX;
  for (uint32_t i = 0; i < cand.n && chosen == UINT32_MAX; i++) {
    uint32_t x = cand.k[i];
    bool ok = true;
    for (uint32_t j = 0; j < viewed.n && ok; j++) ok = viewed.k[j] != x; /* no view of a member */
    for (uint32_t j = 0; j < all.n && ok; j++)
      if (all.k[j] != x) ok = !reaches(c, all.k[j], x, false);
    if (ok) chosen = x;
  }
  if (chosen == UINT32_MAX) {
    uint32_t domain = k == C_REDUCE ? ir_operand(g, v, 0) : v;
    uint32_t x = new_cluster(c, k == C_REDUCE ? KK_ROW : KK_VECTOR, domain,
                             k == C_REDUCE ? reduce_axes(g, v) : 0);
    add_node(c, x, v);
    return;
  }
  if (k == C_REDUCE && c->cl.v[chosen].kind == KK_VECTOR)
    c->cl.v[chosen].kind = KK_ROW, c->cl.v[chosen].axes = reduce_axes(g, v);
  /* merge other fitting operand clusters that are independent of the chosen one */
  for (uint32_t i = 0; i < cand.n; i++) {
    uint32_t x = find(c, cand.k[i]);
    chosen = find(c, chosen);
    if (x == chosen || !compatible(c, chosen, x)) continue;
    bool viewed_x = false;
    for (uint32_t j = 0; j < viewed.n; j++) viewed_x |= find(c, viewed.k[j]) == x;
    if (viewed_x || reaches(c, x, chosen, true) || reaches(c, chosen, x, true)) continue;
    if (!merge_reads_kept(c, chosen, x)) continue;
    merge(c, chosen, x);
  }
  add_node(c, find(c, chosen), v);
}

/* ---- kernels from clusters ------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Add the views v reads (recursively) to the member list. */
typedef VEC(uint32_t) U32s;

static void add_views(Ctx *c, uint32_t v, U32s *m, uint8_t *in, bool packed_stop) {
  if (kind_of(c, v) != C_VIEW || in[v] || (packed_stop && c->packed[v]) || c->indices[v]) return;
  in[v] = 1;
  vec_push(*m, v);
  for (uint32_t i = 0; i < ir_node(c->g, v)->nin; i++) add_views(c, ir_operand(c->g, v, i), m, in, packed_stop);
}

static bool is_output(const Graph *g, uint32_t v) {
  for (uint32_t i = 0; i < g->outputs.n; i++)
    if (g->outputs.v[i] == v) return true;
  return false;
}

/* The first gather in view v's chain of views, or UINT32_MAX. */
static uint32_t gather_in(const Ctx *c, uint32_t v) {
  if (kind_of(c, v) != C_VIEW) return UINT32_MAX;
  if (ir_node(c->g, v)->op == OP_GATHER) return v;
  for (uint32_t i = 0; i < ir_node(c->g, v)->nin; i++) {
    uint32_t u = gather_in(c, ir_operand(c->g, v, i));
    if (u != UINT32_MAX) return u;
  }
  return UINT32_MAX;
}

/* A mix kernel packs b once per block of a's rows (at most 144 of them). A b that is a
 * view that gathers (im2col, say) would be gathered again for every block: with at least
 * PACK_ROWS rows (two blocks at any vector width) the gather is done once, into memory, by
 * a copy kernel of its own (over the gather's shape, so the views after it stay affine),
 * and the matmul reads that. Only the matmul: other readers still inline the gather, so
 * the copy kernel sits between the clusters the gather reads and that matmul, an order
 * clustering already respects (a kernel reading it back from memory could close a cycle
 * with the cluster it gathers from). */
#define PACK_ROWS 256
static void mark_packed(Ctx *c) {
  const Graph *g = c->g;
  for (uint32_t v = 0; v < g->nodes.n; v++) {
    const Node *n = ir_node(g, v);
    if (n->op != OP_MATMUL) continue;
    uint32_t a = ir_operand(g, v, 0), gb = gather_in(c, ir_operand(g, v, 1));
    const Node *na = ir_node(g, a);
    int64_t rows;
    if (na->rank < 2 || gb == UINT32_MAX) continue;
    Dim m = ir_shape(g, a)[na->rank - (ir_attr_int(g, v, AK_TRANSPOSE_A, 0) ? 1 : 2)];
    if (ir_dim_is_const(g, m, &rows) && rows >= PACK_ROWS) c->packed[gb] = 1;
  }
}

/* Whether view v reads only sources (through other views): a copy kernel writing it reads
 * no cluster, so it can sit before every kernel without closing a cycle. memo[v]: 0 not
 * known yet, 1 yes, 2 no (views may share operands: each is visited once). */
static bool of_sources(const Ctx *c, uint32_t v, uint8_t *memo) {
  if (memo[v]) return memo[v] == 1;
  Class k = kind_of(c, v);
  bool yes = k == C_SOURCE || (k == C_VIEW && !c->prologue[v]);
  for (uint32_t i = 0; yes && k == C_VIEW && i < ir_node(c->g, v)->nin; i++) yes = of_sources(c, ir_operand(c->g, v, i), memo);
  memo[v] = yes ? 1 : 2;
  return yes;
}

/* A gather's indices are checked in range by the runtime in their buffer before the kernel
 * runs (kn_supported declines a gather whose indices are computed in its kernel). Indices
 * that are a view of sources (positions from an arange, a slice of a param) are written
 * once by a copy kernel of their own, which every reader then reads from memory, so that
 * the gather's kernel stays native; indices computed by a cluster are already in memory. */
static void mark_indices(Ctx *c) {
  const Graph *g = c->g;
  uint8_t *memo = calloc(g->nodes.n + 1, 1);
  if (!memo) ir_oom();
  for (uint32_t v = 0; v < g->nodes.n; v++) {
    if (ir_node(g, v)->op != OP_GATHER) continue;
    uint32_t u = ir_operand(g, v, 1);
    if (kind_of(c, u) == C_VIEW && of_sources(c, u, memo)) c->indices[u] = 1;
  }
  free(memo);
}

/* Build Kernel records from the clusters (and copy kernels for output views). */
static void build(Ctx *c) {
  const Graph *g = c->g;
  Partition *p = c->p;
  uint32_t nn = g->nodes.n;
  uint8_t *in = calloc(nn, 1), *mat = calloc(nn, 1);
  uint32_t *order = malloc((c->cl.n + nn + 1) * sizeof *order), nk = 0;
  if (!in || !mat || !order) ir_oom();
  /* clusters in order of their first node; then a copy kernel per output view */
  for (uint32_t x = 0; x < c->cl.n; x++)
    if (find(c, x) == x && c->cl.v[x].nodes.n) {
      qsort(c->cl.v[x].nodes.v, c->cl.v[x].nodes.n, sizeof(uint32_t), cmp_u32);
      order[nk++] = x;
    }
  uint8_t *called = calloc(nn, 1); /* views a call reads: the call needs them in memory */
  if (!called) ir_oom();
  for (uint32_t v = 0; v < nn; v++)
    if (classify(g, v) == C_EXTERN)
      for (uint32_t q = 0; q < ir_node(g, v)->nin; q++) called[ir_operand(g, v, q)] = 1;
  for (uint32_t v = 0; v < nn; v++)
    if (kind_of(c, v) == C_VIEW && (is_output(g, v) || called[v] || c->packed[v] || c->indices[v])) {
      uint32_t x = new_cluster(c, KK_VECTOR, v, 0);
      vec_push(c->cl.v[x].nodes, v);
      order[nk++] = x;
    }
  for (uint32_t i = 0; i < nk; i++) {
    Cluster *cl = &c->cl.v[order[i]];
    Kernel k = {.kind = cl->kind, .domain = cl->domain, .axes = cl->axes};
    U32s m = {0};
    memset(in, 0, nn);
    for (uint32_t j = 0; j < cl->nodes.n; j++) {
      uint32_t v = cl->nodes.v[j];
      in[v] = 1;
      vec_push(m, v);
    }
    for (uint32_t j = 0; j < cl->nodes.n && cl->kind != KK_EXTERN; j++) {
      uint32_t v = cl->nodes.v[j];
      for (uint32_t q = 0; q < ir_node(g, v)->nin; q++) /* a matmul's b stops at a written gather */
        add_views(c, ir_operand(g, v, q), &m, in, ir_node(g, v)->op == OP_MATMUL && q == 1);
    }
    if (cl->nodes.n == 1 && kind_of(c, cl->nodes.v[0]) == C_VIEW) /* a copy kernel */
      for (uint32_t q = 0; q < ir_node(g, cl->nodes.v[0])->nin; q++)
        add_views(c, ir_operand(g, cl->nodes.v[0], q), &m, in, false);
    qsort(m.v, m.n, sizeof(uint32_t), cmp_u32);
    k.members = p->ids.n;
    k.nmembers = m.n;
    for (uint32_t j = 0; j < m.n; j++) vec_push(p->ids, m.v[j]);
    /* inputs: operands from outside, in order of first use; literals are constants */
    k.inputs = p->ids.n;
    for (uint32_t j = 0; j < m.n; j++)
      for (uint32_t q = 0; q < ir_node(g, m.v[j])->nin; q++) {
        uint32_t u = ir_operand(g, m.v[j], q);
        if (in[u] || ir_node(g, u)->op == OP_LITERAL) continue;
        bool dup = false;
        for (uint32_t r = k.inputs; r < p->ids.n && !dup; r++) dup = p->ids.v[r] == u;
        if (!dup) vec_push(p->ids, u), mat[u] = 1;
      }
    k.ninputs = p->ids.n - k.inputs;
    vec_free(m);
    vec_push(p->kernels, k);
    for (uint32_t j = 0; j < cl->nodes.n; j++) p->kernel_of[cl->nodes.v[j]] = p->kernels.n - 1;
  }
  /* outputs: members (not inlined views) that another kernel reads or the graph returns */
  for (uint32_t i = 0; i < p->kernels.n; i++) {
    Kernel *k = &p->kernels.v[i];
    k->outputs = p->ids.n;
    for (uint32_t j = 0; j < k->nmembers; j++) {
      uint32_t v = p->ids.v[k->members + j];
      if (p->kernel_of[v] == i && (mat[v] || is_output(g, v) || classify(g, v) == C_EXTERN)) vec_push(p->ids, v);
    }
    k->noutputs = p->ids.n - k->outputs;
  }
  free(in);
  free(mat);
  free(order);
  free(called);
}

/* Dispatch levels: a kernel runs one level after the latest kernel it reads from. The
 * kernels form a DAG, so relaxing until nothing changes terminates within nk rounds. */
/* Dispatch levels; false if the kernels' reads form a cycle (a level would pass nk). */
static bool levels(Partition *p) {
  uint32_t nk = p->kernels.n;
  for (bool changed = true; changed;) {
    changed = false;
    for (uint32_t i = 0; i < nk; i++) {
      Kernel *k = &p->kernels.v[i];
      for (uint32_t j = 0; j < k->ninputs; j++) {
        uint32_t src = p->kernel_of[p->ids.v[k->inputs + j]];
        if (src != UINT32_MAX && src != i && p->kernels.v[src].dispatch + 1 > k->dispatch) {
          k->dispatch = p->kernels.v[src].dispatch + 1;
          changed = true;
          if (k->dispatch > nk) return false;
        }
      }
    }
  }
  for (uint32_t i = 0; i < nk; i++)
    if (p->kernels.v[i].dispatch + 1 > p->ndispatch) p->ndispatch = p->kernels.v[i].dispatch + 1;
  return true;
}

/* The node that anchors a kernel's position: its first member that is not a view. */
static uint32_t anchor(const Partition *p, const Kernel *k) {
  for (uint32_t j = 0; j < k->nmembers; j++) {
    uint32_t v = p->ids.v[k->members + j];
    OpKind kind = ir_ops[ir_node(p->g, v)->op].kind;
    if (kind != OPK_LAYOUT && kind != OPK_CONST) return v;
  }
  return k->domain;
}

static int cmp_kernel(const void *a, const void *b, void *arg) {
  const Kernel *x = a, *y = b;
  const Partition *p = arg;
  if (x->dispatch != y->dispatch) return x->dispatch < y->dispatch ? -1 : 1;
  uint32_t fx = anchor(p, x), fy = anchor(p, y);
  return fx < fy ? -1 : fx > fy;
}

/* Prologues: a layernorm or rmsnorm over the last axis of an f32 value whose every reader
 * is a matmul reading it as a (not transposed), and which is no graph output, is not
 * computed by a kernel of its own: each reading mix kernel computes it while it packs
 * its blocks of a (docs/fusion.md), so the normalized activation never goes to memory. */
static void find_prologues(Ctx *c) {
  const Graph *g = c->g;
  uint32_t nn = g->nodes.n;
  uint8_t *bad = calloc(nn + 1, 1), *read = calloc(nn + 1, 1);
  if (!bad || !read) ir_oom();
  for (uint32_t v = 0; v < nn; v++) {
    const Node *n = ir_node(g, v);
    for (uint32_t q = 0; q < n->nin; q++) {
      uint32_t u = ir_operand(g, v, q);
      read[u] = 1;
      if (n->op != OP_MATMUL || q != 0 || ir_operand(g, v, 1) == u || ir_attr_int(g, v, AK_TRANSPOSE_A, 0)) bad[u] = 1;
    }
  }
  for (uint32_t v = 0; v < nn; v++) {
    const Node *n = ir_node(g, v);
    bool norm = n->op == OP_RMSNORM ||
                (n->op == OP_LAYERNORM && ir_axis(ir_attr_int(g, v, AK_AXIS, -1), n->rank) == n->rank - 1);
    c->prologue[v] = norm && n->dtype == DT_F32 && n->rank >= 2 && read[v] && !bad[v] && !is_output(g, v);
  }
  free(bad);
  free(read);
}

static void ctx_free(Ctx *c) {
  for (uint32_t x = 0; x < c->cl.n; x++) vec_free(c->cl.v[x].nodes);
  vec_free(c->cl);
  free(c->cluster_of);
  free(c->mark);
  free(c->prologue);
  free(c->packed);
  free(c->indices);
}

Partition *fu_partition(const Graph *g, Err *err) {
  Partition *p = calloc(1, sizeof *p);
  Ctx c = {.g = g, .p = p};
  uint32_t nn = g->nodes.n;
  if (!p || !(p->kernel_of = malloc(nn * sizeof *p->kernel_of)) ||
      !(c.cluster_of = malloc(nn * sizeof *c.cluster_of)) ||
      !(c.mark = calloc(2 * nn + 1, sizeof *c.mark)) || !(c.prologue = calloc(nn + 1, 1)) ||
      !(c.packed = calloc(nn + 1, 1)) || !(c.indices = calloc(nn + 1, 1))) {
    free(c.cluster_of);
    free(c.mark);
    free(c.prologue);
    free(c.packed);
    fu_free(p);
    ir_err(err, DVM_ERR_NOMEM, "out of memory");
    return NULL;
  }
  p->g = g;
  for (uint32_t v = 0; v < nn; v++) c.cluster_of[v] = p->kernel_of[v] = UINT32_MAX;
  find_prologues(&c);
  mark_packed(&c);
  mark_indices(&c);
  for (uint32_t v = 0; v < nn; v++) place(&c, v);
  build(&c); /* sets kernel_of to build order */
  if (!levels(p)) { /* a partition bug, refused rather than run */
    ctx_free(&c);
    fu_free(p);
    ir_err(err, DVM_ERR_GRAPH, "internal error: the fused kernels read each other in a cycle");
    return NULL;
  }
  if (p->kernels.n) qsort_r(p->kernels.v, p->kernels.n, sizeof(Kernel), cmp_kernel, p); /* v: NULL while empty */
  for (uint32_t i = 0; i < p->kernels.n; i++) /* kernel_of in the final order */
    for (uint32_t j = 0; j < p->kernels.v[i].nmembers; j++) {
      uint32_t v = p->ids.v[p->kernels.v[i].members + j];
      if (kind_of(&c, v) != C_VIEW || p->kernels.v[i].domain == v) p->kernel_of[v] = i;
    }
  for (uint32_t i = 0; i < p->kernels.n; i++) fu_key(p, &p->kernels.v[i]);
  ctx_free(&c);
  return p;
}

void fu_free(Partition *p) {
  if (!p) return;
  vec_free(p->kernels);
  vec_free(p->ids);
  vec_free(p->dims);
  free(p->kernel_of);
  free(p);
}

const char *fu_kind_name(KernelKind k) {
  static const char *const names[] = {"vector", "row", "mix", "extern"};
  return (unsigned)k < 4 ? names[k] : "?";
}
