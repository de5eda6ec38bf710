/* ir/dim.c — interned symbolic dims, symbols and deduction by union-find.
 *
 * A Dim is a canonical sum of terms coef * s1 * s2 * ... (DimTerm). Canonical means:
 * symbols within a term sorted, terms sorted (higher degree first, then by symbols),
 * equal monomials merged, zero coefficients dropped. Dims are hash-consed in the
 * graph's DimTable, so equal expressions have equal ids.
 *
 * Deduction (ir_unify): an equality a == b is turned into the difference a - b over
 * representatives. If it is a nonzero constant the graph is contradictory. If some
 * symbol occurs in it only once, linearly, with coefficient ±1, that symbol's class is
 * bound to the rest (a symbol: union; a constant: binding; an expression: N*S = M).
 * Otherwise the equality is only checked at run time. Every equality is recorded as a
 * Constraint either way, so the runtime re-checks all of them with concrete values.
 *
 * Arithmetic never wraps: a coefficient overflow gives DIM_NONE, reported by callers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ir.h"

/* ---- canonical terms ----------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Order of monomials: higher degree first, then lexicographic by symbol id. */
static int cmp_mono(const DimTerm *a, const DimTerm *b) {
  if (a->deg != b->deg) return a->deg > b->deg ? -1 : 1;
  for (int i = 0; i < a->deg; i++)
    if (a->sym[i] != b->sym[i]) return a->sym[i] < b->sym[i] ? -1 : 1;
  return 0;
}

static int cmp_term(const void *a, const void *b) { return cmp_mono(a, b); }

/* Sort, merge and drop zeros; returns the new count or -1 on overflow. */
static int canon(DimTerm *t, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) qsort(t[i].sym, t[i].deg, sizeof(uint32_t), cmp_u32);
  qsort(t, n, sizeof *t, cmp_term);
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (k > 0 && cmp_mono(&t[k - 1], &t[i]) == 0) {
      if (__builtin_add_overflow(t[k - 1].coef, t[i].coef, &t[k - 1].coef)) return -1;
    } else {
      t[k++] = t[i];
    }
    if (t[k - 1].coef == 0) k--;
  }
  return (int)k;
}

/* ---- interning ----------------------------------------------------------------------- */

static uint64_t hash_code(const int64_t *code, size_t n) {
  return XXH3_64bits(code, n * sizeof *code);
}

static size_t code_len(const DimTable *t, Dim d) {
  const int64_t *c = t->code.v + t->start.v[d];
  size_t k = 1;
  for (int64_t i = 0; i < c[0]; i++) k += 2 + (size_t)c[k + 1];
  return k;
}

static void rehash(DimTable *t) {
  uint32_t cap = t->hcap ? t->hcap * 2 : 256;
  uint32_t *h = calloc(cap, sizeof *h);
  if (!h) ir_oom();
  for (uint32_t d = 0; d < t->start.n; d++) {
    uint64_t x = hash_code(t->code.v + t->start.v[d], code_len(t, d));
    uint32_t i = (uint32_t)x & (cap - 1);
    while (h[i]) i = (i + 1) & (cap - 1);
    h[i] = d + 1;
  }
  free(t->hash);
  t->hash = h;
  t->hcap = cap;
}

static Dim intern(Graph *g, const DimTerm *t, uint32_t n) {
  int64_t buf[1 + DIM_MAX_TERMS * (2 + DIM_MAX_DEGREE)];
  size_t k = 0;
  buf[k++] = n;
  for (uint32_t i = 0; i < n; i++) {
    buf[k++] = t[i].coef;
    buf[k++] = t[i].deg;
    for (int j = 0; j < t[i].deg; j++) buf[k++] = t[i].sym[j];
  }
  DimTable *tab = &g->dims;
  if ((tab->start.n + 1) * 2 > tab->hcap) rehash(tab);
  uint64_t x = hash_code(buf, k);
  uint32_t i = (uint32_t)x & (tab->hcap - 1);
  for (; tab->hash[i]; i = (i + 1) & (tab->hcap - 1)) {
    Dim d = tab->hash[i] - 1;
    if (code_len(tab, d) == k && memcmp(tab->code.v + tab->start.v[d], buf, k * sizeof *buf) == 0)
      return d;
  }
  Dim d = tab->start.n;
  vec_push(tab->start, tab->code.n);
  if (!vec_reserve(tab->code, (uint32_t)k)) ir_oom();
  memcpy(tab->code.v + tab->code.n, buf, k * sizeof *buf);
  tab->code.n += (uint32_t)k;
  tab->hash[i] = d + 1;
  return d;
}

uint32_t ir_dim_terms(const Graph *g, Dim d, DimTerm *t) {
  const int64_t *c = g->dims.code.v + g->dims.start.v[d];
  uint32_t n = (uint32_t)c[0];
  size_t k = 1;
  for (uint32_t i = 0; i < n; i++) {
    t[i].coef = c[k++];
    t[i].deg = (uint8_t)c[k++];
    for (int j = 0; j < t[i].deg; j++) t[i].sym[j] = (uint32_t)c[k++];
  }
  return n;
}

Dim ir_dim_from_terms(Graph *g, DimTerm *t, uint32_t n) {
  int k = canon(t, n);
  if (k < 0 || k > DIM_MAX_TERMS) return DIM_NONE;
  return intern(g, t, (uint32_t)k);
}

Dim ir_dim_const(Graph *g, int64_t c) {
  DimTerm t = {.coef = c, .deg = 0};
  return ir_dim_from_terms(g, &t, 1);
}

Dim ir_dim_sym(Graph *g, uint32_t sym) {
  DimTerm t = {.coef = 1, .deg = 1, .sym = {sym}};
  return intern(g, &t, 1);
}

/* a + sign * b */
static Dim addsub(Graph *g, Dim a, Dim b, int sign) {
  if (a == DIM_NONE || b == DIM_NONE) return DIM_NONE;
  DimTerm t[2 * DIM_MAX_TERMS];
  uint32_t n = ir_dim_terms(g, a, t);
  uint32_t m = ir_dim_terms(g, b, t + n);
  if (sign < 0)
    for (uint32_t i = n; i < n + m; i++) {
      if (t[i].coef == INT64_MIN) return DIM_NONE;
      t[i].coef = -t[i].coef;
    }
  return ir_dim_from_terms(g, t, n + m);
}

Dim ir_dim_add(Graph *g, Dim a, Dim b) { return addsub(g, a, b, 1); }
Dim ir_dim_sub(Graph *g, Dim a, Dim b) { return addsub(g, a, b, -1); }

Dim ir_dim_mul(Graph *g, Dim a, Dim b) {
  if (a == DIM_NONE || b == DIM_NONE) return DIM_NONE;
  DimTerm x[DIM_MAX_TERMS], y[DIM_MAX_TERMS], t[DIM_MAX_TERMS * DIM_MAX_TERMS];
  uint32_t n = ir_dim_terms(g, a, x), m = ir_dim_terms(g, b, y), k = 0;
  for (uint32_t i = 0; i < n; i++)
    for (uint32_t j = 0; j < m; j++) {
      DimTerm *r = &t[k++];
      if (x[i].deg + y[j].deg > DIM_MAX_DEGREE) return DIM_NONE;
      if (__builtin_mul_overflow(x[i].coef, y[j].coef, &r->coef)) return DIM_NONE;
      r->deg = x[i].deg + y[j].deg;
      memcpy(r->sym, x[i].sym, x[i].deg * sizeof(uint32_t));
      memcpy(r->sym + x[i].deg, y[j].sym, y[j].deg * sizeof(uint32_t));
    }
  return ir_dim_from_terms(g, t, k);
}

bool ir_dim_is_const(const Graph *g, Dim d, int64_t *c) {
  const int64_t *x = g->dims.code.v + g->dims.start.v[d]; /* n, then coef, deg, syms per term */
  if (x[0] == 0) return *c = 0, true;
  if (x[0] == 1 && x[2] == 0) return *c = x[1], true;
  return false;
}

bool ir_dim_is_sym(const Graph *g, Dim d, uint32_t *sym) {
  DimTerm t[DIM_MAX_TERMS];
  uint32_t n = ir_dim_terms(g, d, t);
  if (n == 1 && t[0].deg == 1 && t[0].coef == 1) return *sym = t[0].sym[0], true;
  return false;
}

/* ---- symbols and union-find ---------------------------------------------------------- */

int64_t ir_sym_find(const Graph *g, const char *name, size_t n) {
  for (uint32_t s = 0; s < g->syms.n; s++) {
    const char *x = ir_s(g, g->syms.v[s].name);
    if (strlen(x) == n && memcmp(x, name, n) == 0) return s;
  }
  return -1;
}

uint32_t ir_sym_get(Graph *g, const char *name, size_t n, uint32_t line) {
  int64_t s = ir_sym_find(g, name, n);
  if (s >= 0) return (uint32_t)s;
  Symbol sym = {.name = ir_str(g, name, n), .parent = g->syms.n, .bound = DIM_NONE, .line = line};
  vec_push(g->syms, sym);
  return g->syms.n - 1;
}

uint32_t ir_sym_rep(const Graph *g, uint32_t s) {
  while (g->syms.v[s].parent != s) s = g->syms.v[s].parent;
  return s;
}

Dim ir_dim_subst(Graph *g, Dim d) {
  if (d == DIM_NONE) return d;
  DimTerm t[DIM_MAX_TERMS];
  uint32_t n = ir_dim_terms(g, d, t);
  bool changed = false;
  for (uint32_t i = 0; i < n && !changed; i++)
    for (int j = 0; j < t[i].deg; j++) {
      uint32_t r = ir_sym_rep(g, t[i].sym[j]);
      if (r != t[i].sym[j] || g->syms.v[r].bound != DIM_NONE) changed = true;
    }
  if (!changed) return d;
  Dim sum = ir_dim_const(g, 0);
  for (uint32_t i = 0; i < n; i++) {
    Dim p = ir_dim_const(g, t[i].coef);
    for (int j = 0; j < t[i].deg; j++) {
      uint32_t r = ir_sym_rep(g, t[i].sym[j]);
      Dim f = g->syms.v[r].bound != DIM_NONE ? ir_dim_subst(g, g->syms.v[r].bound)
                                             : ir_dim_sym(g, r);
      p = ir_dim_mul(g, p, f);
    }
    sum = ir_dim_add(g, sum, p);
  }
  return sum;
}

bool ir_dim_has_sym(const Graph *g, Dim d, uint32_t s) {
  DimTerm t[DIM_MAX_TERMS];
  uint32_t n = ir_dim_terms(g, d, t);
  for (uint32_t i = 0; i < n; i++)
    for (int j = 0; j < t[i].deg; j++)
      if (t[i].sym[j] == s) return true;
  return false;
}

static int64_t gcd(int64_t a, int64_t b) {
  a = a < 0 ? -a : a;
  b = b < 0 ? -b : b;
  while (b) {
    int64_t r = a % b;
    a = b;
    b = r;
  }
  return a;
}

/* Solve diff == 0 for one symbol; returns true if a class was bound. The difference is
 * first divided by the gcd of its coefficients (64*B == 64*N*S gives B = N*S). */
static bool solve(Graph *g, Dim diff) {
  DimTerm t[DIM_MAX_TERMS];
  uint32_t n = ir_dim_terms(g, diff, t);
  int64_t d = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (t[i].coef == INT64_MIN) return false;
    d = gcd(d, t[i].coef);
  }
  for (uint32_t i = 0; d > 1 && i < n; i++) t[i].coef /= d;
  /* prefer eliminating the latest-declared symbol, so earlier names stay as reps */
  int best = -1;
  for (uint32_t i = 0; i < n; i++) {
    if (t[i].deg != 1 || (t[i].coef != 1 && t[i].coef != -1)) continue;
    uint32_t s = t[i].sym[0];
    bool alone = true;
    for (uint32_t k = 0; k < n && alone; k++)
      if (k != i)
        for (int j = 0; j < t[k].deg; j++)
          if (t[k].sym[j] == s) alone = false;
    bool simple = n == 1 || (n == 2 && (t[1 - i].deg == 0 || (t[1 - i].deg == 1 && (t[1 - i].coef == 1 || t[1 - i].coef == -1))));
    if (g->syms.v[s].data && !simple) continue; /* kept free: see Symbol.data */
    if (alone && (best < 0 || s > t[best].sym[0])) best = (int)i;
  }
  if (best < 0) return false;
  uint32_t s = t[best].sym[0];
  int64_t c = t[best].coef;
  /* s = -(rest) / c, with c = ±1 */
  DimTerm rest[DIM_MAX_TERMS];
  uint32_t m = 0;
  for (uint32_t i = 0; i < n; i++)
    if (i != (uint32_t)best) {
      rest[m] = t[i];
      if (c == 1) {
        if (rest[m].coef == INT64_MIN) return false;
        rest[m].coef = -rest[m].coef;
      }
      m++;
    }
  Dim val = ir_dim_from_terms(g, rest, m);
  if (val == DIM_NONE || ir_dim_has_sym(g, val, s)) return false;
  uint32_t other;
  if (ir_dim_is_sym(g, val, &other)) g->syms.v[s].parent = other; /* union */
  else g->syms.v[s].bound = val;
  return true;
}

static void record(Graph *g, ConKind k, Dim a, Dim b, uint32_t node, uint32_t line) {
  Constraint c = {.kind = (uint8_t)k, .a = a, .b = b, .node = node, .line = line};
  vec_push(g->cons, c);
}

dvm_status ir_unify(Graph *g, Dim a, Dim b, uint32_t node, uint32_t line, Err *err) {
  if (a == b) return DVM_OK;
  record(g, CON_EQ, a, b, node, line);
  Dim sa = ir_dim_subst(g, a), sb = ir_dim_subst(g, b);
  if (sa == sb) return DVM_OK;
  Dim diff = ir_dim_sub(g, sa, sb);
  int64_t c;
  char x[128], y[128];
  if (diff == DIM_NONE)
    return ir_errl(err, DVM_ERR_OVERFLOW, g->file, line, "dim expression overflow in %s = %s",
                   ir_dim_str(g, a, x, sizeof x), ir_dim_str(g, b, y, sizeof y));
  if (ir_dim_is_const(g, diff, &c))
    return ir_errl(err, DVM_ERR_SHAPE, g->file, line, "%s: dims %s and %s must be equal",
                   ir_ops[g->nodes.v[node].op].name, ir_dim_str(g, sa, x, sizeof x),
                   ir_dim_str(g, sb, y, sizeof y));
  solve(g, diff);
  return DVM_OK;
}

dvm_status ir_require_le(Graph *g, Dim a, Dim b, uint32_t node, uint32_t line, Err *err) {
  int64_t x, y;
  Dim sa = ir_dim_subst(g, a), sb = ir_dim_subst(g, b);
  if (sa == sb) return DVM_OK;
  if (ir_dim_is_const(g, sa, &x) && ir_dim_is_const(g, sb, &y)) {
    if (x <= y) return DVM_OK;
    return ir_errl(err, DVM_ERR_SHAPE, g->file, line, "%s: %lld must be <= %lld",
                   ir_ops[g->nodes.v[node].op].name, (long long)x, (long long)y);
  }
  record(g, CON_LE, a, b, node, line);
  return DVM_OK;
}

/* ---- evaluation and printing ---------------------------------------------------------- */

bool ir_dim_eval(const Graph *g, Dim d, const int64_t *symval, int64_t *out) {
  DimTerm t[DIM_MAX_TERMS];
  uint32_t n = ir_dim_terms(g, d, t);
  int64_t sum = 0;
  for (uint32_t i = 0; i < n; i++) {
    int64_t p = t[i].coef;
    for (int j = 0; j < t[i].deg; j++)
      if (__builtin_mul_overflow(p, symval[t[i].sym[j]], &p)) return false;
    if (__builtin_add_overflow(sum, p, &sum)) return false;
  }
  *out = sum;
  return true;
}

char *ir_dim_str(const Graph *g, Dim d, char *buf, size_t size) {
  if (d == DIM_NONE) {
    snprintf(buf, size, "?");
    return buf;
  }
  DimTerm t[DIM_MAX_TERMS];
  uint32_t n = ir_dim_terms(g, d, t);
  size_t k = 0;
#define PUT(...)                                                                           \
  do {                                                                                     \
    int w_ = snprintf(buf + k, k < size ? size - k : 0, __VA_ARGS__);                      \
    if (w_ > 0) k += (size_t)w_;                                                           \
  } while (0)
  if (n == 0) PUT("0");
  for (uint32_t i = 0; i < n; i++) {
    int64_t c = t[i].coef;
    bool neg = c < 0;
    uint64_t mag = neg ? 0 - (uint64_t)c : (uint64_t)c;
    if (i == 0) PUT("%s", neg ? "-" : "");
    else PUT(" %s ", neg ? "-" : "+");
    bool first = true;
    if (mag != 1 || t[i].deg == 0) {
      PUT("%llu", (unsigned long long)mag);
      first = false;
    }
    for (int j = 0; j < t[i].deg; j++) {
      PUT("%s%s", first ? "" : "*", ir_s(g, g->syms.v[t[i].sym[j]].name));
      first = false;
    }
  }
#undef PUT
  if (k >= size && size > 4) memcpy(buf + size - 4, "...", 4);
  return buf;
}
