/* runtime/spec.c — ONNX models specialized on the values of some inputs.
 *
 * Some ONNX ops take as an input what dvm needs when it builds the graph: a Reshape's
 * shape, reduction axes, a Split's sizes, a Resize's scales, a Pad's pads. Exporters
 * usually make these constants or compute them from shapes (which the importer follows
 * symbolically); when one is a graph input instead, the import stops and names it
 * (onnx_import's `need`). Such a model is kept as its file's bytes and compiled once per
 * distinct set of values of those inputs: a variant, an ordinary model imported with the
 * values as constants. A run looks its variant up by the values (dtype, shape and bytes of
 * each such input), so repeated values cost a lookup and new values one import and
 * compile, like a new model. An input found to be needed only once another is fixed joins
 * the key for every later variant.
 *
 * An int64 input is first tried as one whose values bind symbols (OnnxFixed.bind): its
 * elements that onnx_binds keeps become symbols of the variant's graph, bound from the
 * input's data at each run like dims from shapes, and the key holds only which elements
 * those are (and the others' values). A Reshape's, an Expand's or a Tile's new sizes then
 * cost no import and no compile. When an op needs such an input's values as constants
 * (axes, a Slice's clamped bounds, a TopK's K, a size computed from it that may be 0 or 1),
 * that input is keyed by its bytes from then on; if an import fails with symbols where it
 * succeeds with constants, every input is.
 *
 * Variants live in an LRU list of at most VARIANTS_MAX; one in use by a run (users > 0) is
 * never freed, and the list may grow past the limit while all are in use. Building a
 * variant holds the lock: runs with known values wait for it too (the compile is the
 * bytecode's, microseconds to milliseconds; native code follows in the background). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../onnx/onnx.h"
#include "runtime.h"

#include <pthread.h>

enum { VARIANTS_MAX = 16, FIXED_MAX = 16 };

typedef struct Variant {
  struct Variant *next; /* less recently used */
  unsigned char *key;
  size_t nkey;
  dvm_model *m;
  int users;
} Variant;

struct Spec {
  dvm_context *ctx;
  dvm_compile_options opt;
  char *path, *data;
  size_t len;
  char **out_names;
  int *out_dtypes, nout;
  char *fixed[FIXED_MAX]; /* dvm names of the inputs whose values key the variants */
  bool bind[FIXED_MAX];   /* ... and whether each one's values bind symbols */
  int nfixed;
  pthread_mutex_t lock;
  Variant *variants; /* most recently used first */
  int layout;        /* bumped when fixed or bind change: variants keyed before are stale */
  int nvariants;
  dvm_stats retired; /* counters of the variants evicted */
};

Spec *rt_spec_new(dvm_context *ctx, const char *path, char *data, size_t len,
                  const dvm_compile_options *opt, const char *need, char **out_names,
                  int *out_dtypes, int nout) {
  Spec *s = calloc(1, sizeof *s);
  if (!s || !(s->path = strdup(path)) || !(s->fixed[0] = strdup(need))) ir_oom();
  s->ctx = ctx;
  s->opt = opt ? *opt : (dvm_compile_options){0};
  s->data = data, s->len = len;
  s->out_names = out_names, s->out_dtypes = out_dtypes, s->nout = nout;
  s->nfixed = 1;
  s->bind[0] = true;
  pthread_mutex_init(&s->lock, NULL);
  return s;
}

static void add_stats(dvm_stats *a, const dvm_stats *b) {
  a->kernels += b->kernels, a->native_kernels += b->native_kernels;
  a->cache_hits += b->cache_hits, a->cache_misses += b->cache_misses;
  a->vm_encodes += b->vm_encodes, a->llvm_compiles += b->llvm_compiles;
  a->encode_us += b->encode_us, a->lower_us += b->lower_us, a->compile_ms += b->compile_ms;
  a->runs += b->runs, a->plan_hits += b->plan_hits, a->plan_misses += b->plan_misses;
}

static void variant_free(Variant *v) {
  dvm_model_destroy(v->m);
  free(v->key);
  free(v);
}

void rt_spec_free(Spec *s) {
  if (!s) return;
  for (Variant *v = s->variants, *next; v; v = next) next = v->next, variant_free(v);
  for (int i = 0; i < s->nout; i++) free(s->out_names[i]);
  for (int i = 0; i < s->nfixed; i++) free(s->fixed[i]);
  free(s->out_names);
  free(s->out_dtypes);
  free(s->path);
  free(s->data);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

int rt_spec_num_outputs(const Spec *s) { return s->nout; }
const char *rt_spec_output_name(const Spec *s, int i) { return i >= 0 && i < s->nout ? s->out_names[i] : NULL; }
int rt_spec_output_dtype(const Spec *s, const char *name) {
  for (int i = 0; name && i < s->nout; i++)
    if (!strcmp(s->out_names[i], name)) return s->out_dtypes[i];
  return -1;
}

/* The given tensor of input `name`, or NULL. */
static Tensor *given(const char *name, int n, const char *const *names, Tensor *const *inputs) {
  for (int i = 0; i < n; i++)
    if (names && names[i] && inputs[i] && !strcmp(names[i], name)) return inputs[i];
  return NULL;
}

/* The key of the fixed inputs' values (each: whether it binds, dtype, rank, shape, then
 * its bytes, or per element whether it binds and else its value) in a malloc'd buffer; NULL
 * with err set if one is not given. */
static unsigned char *make_key(const Spec *s, int n, const char *const *names, Tensor *const *inputs,
                               size_t *nkey, Err *err) {
  size_t len = 0;
  Tensor *t[FIXED_MAX];
  for (int i = 0; i < s->nfixed; i++) {
    if (!(t[i] = given(s->fixed[i], n, names, inputs)))
      return ir_err(err, DVM_ERR_USAGE, "%s: input '%s' is not given: the model's structure depends on "
                    "its values (docs/onnx.md, specialization)", s->path, s->fixed[i]), NULL;
    if (t[i]->numel > SYM_MAX)
      return ir_err(err, DVM_ERR_SHAPE, "%s: input '%s' has %lld elements; its values shape the model, "
                    "and dvm takes at most %d", s->path, s->fixed[i], (long long)t[i]->numel, SYM_MAX), NULL;
    if (t[i]->numel > 0 && !t[i]->data)
      return ir_err(err, DVM_ERR_USAGE, "%s: input '%s' has no data", s->path, s->fixed[i]), NULL;
    len += sizeof(int64_t) * (3 + DVM_MAX_RANK + 2 * (size_t)t[i]->numel);
  }
  unsigned char *key = calloc(1, len + 1), *p = key;
  if (!key) ir_oom();
  for (int i = 0; i < s->nfixed; i++) {
    bool bind = s->bind[i] && t[i]->dtype == DT_I64;
    int64_t head[3 + DVM_MAX_RANK] = {bind, t[i]->dtype, t[i]->rank};
    memcpy(head + 3, t[i]->shape, (size_t)t[i]->rank * sizeof *head);
    memcpy(p, head, sizeof head), p += sizeof head;
    size_t bytes = (size_t)t[i]->numel * ir_dtype_size(t[i]->dtype);
    if (!bind && bytes) memcpy(p, t[i]->data, bytes), p += bytes;
    for (int64_t k = 0; bind && k < t[i]->numel; k++) {
      int64_t x = rt_get_i(t[i]->data, t[i]->dtype, k), e[2] = {onnx_binds(x), onnx_binds(x) ? 0 : x};
      memcpy(p, e, sizeof e), p += sizeof e;
    }
  }
  *nkey = (size_t)(p - key);
  return key;
}

/* Import and compile the variant for the given inputs; an input the import finds it needs
 * joins s->fixed. Under s->lock. */
static dvm_status build(Spec *s, int n, const char *const *names, Tensor *const *inputs,
                        dvm_model **out, Err *err) {
  for (;;) {
    Tensor *vals[FIXED_MAX];
    for (int i = 0; i < s->nfixed; i++)
      if (!(vals[i] = given(s->fixed[i], n, names, inputs)))
        return ir_err(err, DVM_ERR_USAGE, "%s: input '%s' is not given: the model's structure depends "
                      "on its values (docs/onnx.md, specialization)", s->path, s->fixed[i]);
    OnnxFixed fx = {(const char *const *)s->fixed, vals, s->bind, s->nfixed};
    char need[256];
    dvm_graph *g;
    dvm_status st = rt_graph_parse_onnx(s->ctx, s->data, s->len, s->path, &fx, &g, need, sizeof need);
    int known = -1, binding = 0;
    for (int i = 0; i < s->nfixed; i++) {
      if (!strcmp(s->fixed[i], need)) known = i;
      binding += s->bind[i] && vals[i]->dtype == DT_I64;
    }
    if (st && need[0] && known < 0 && s->nfixed < FIXED_MAX) {
      if (!(s->fixed[s->nfixed] = strdup(need))) ir_oom();
      s->bind[s->nfixed++] = true;
      s->layout++;
      continue;
    }
    if (st && known >= 0 && s->bind[known]) { /* needed as constants */
      s->bind[known] = false;
      s->layout++;
      continue;
    }
    if (st && binding) { /* a failure with symbols: if constants avoid it, constants from now on */
      bool none[FIXED_MAX] = {false};
      OnnxFixed fc = {(const char *const *)s->fixed, vals, none, s->nfixed};
      char need2[256];
      dvm_status st2 = rt_graph_parse_onnx(s->ctx, s->data, s->len, s->path, &fc, &g, need2, sizeof need2);
      if (!st2 || need2[0]) {
        for (int i = 0; i < s->nfixed; i++) s->bind[i] = false;
        s->layout++;
        if (st2) continue;
        st = DVM_OK;
      } else {
        st = st2; /* these values fail either way (an invalid shape): binding stays */
      }
    }
    if (st) return ir_err(err, st, "%s", dvm_last_error());
    st = rt_model_adopt_onnx(s->ctx, g, &s->opt, out);
    if (st) ir_err(err, st, "%s", dvm_last_error());
    dvm_graph_destroy(g);
    return st;
  }
}

/* Free the variant *link (idle), keeping its counters; under s->lock. */
static void retire(Spec *s, Variant **link) {
  Variant *o = *link;
  dvm_stats st;
  *link = o->next;
  dvm_model_stats(o->m, &st);
  add_stats(&s->retired, &st);
  variant_free(o);
  s->nvariants--;
}

/* The variant for the given inputs, its users count raised; NULL with err set. */
static Variant *acquire(Spec *s, int n, const char *const *names, Tensor *const *inputs, Err *err) {
  pthread_mutex_lock(&s->lock);
  size_t nkey;
  unsigned char *key = make_key(s, n, names, inputs, &nkey, err);
  Variant *v = NULL, **link = &s->variants;
  for (; key && *link; link = &(*link)->next)
    if ((*link)->nkey == nkey && !memcmp((*link)->key, key, nkey)) break;
  if (key && *link) { /* a hit: to the front */
    v = *link;
    *link = v->next;
    free(key);
  } else if (key) {
    dvm_model *m;
    int layout = s->layout;
    dvm_status st = build(s, n, names, inputs, &m, err);
    free(key);
    key = NULL;
    if (s->layout != layout) { /* the key changed: variants keyed the old way are stale */
      for (Variant **l = &s->variants; *l;)
        if ((*l)->users) l = &(*l)->next;
        else retire(s, l);
    }
    if (!st && !(key = make_key(s, n, names, inputs, &nkey, err))) dvm_model_destroy(m);
    if (key) {
      if (!(v = calloc(1, sizeof *v))) ir_oom();
      v->key = key, v->nkey = nkey, v->m = m;
      s->nvariants++;
    }
  }
  if (v) {
    v->next = s->variants, s->variants = v, v->users++;
    while (s->nvariants > VARIANTS_MAX) { /* evict the least recently used idle one */
      Variant **last = NULL;
      for (Variant **q = &s->variants; *q; q = &(*q)->next)
        if (!(*q)->users) last = q;
      if (!last) break;
      retire(s, last);
    }
  }
  pthread_mutex_unlock(&s->lock);
  return v;
}

static void release(Spec *s, Variant *v) {
  pthread_mutex_lock(&s->lock);
  v->users--;
  pthread_mutex_unlock(&s->lock);
}

dvm_status rt_spec_shape(Spec *s, const char *name, int ninputs, const char *const *names,
                         dvm_tensor *const *inputs, int nsyms, const char *const *sym_names,
                         const int64_t *sym_values, int *rank, int64_t *shape) {
  Err err = {0};
  Variant *v = acquire(s, ninputs, names, inputs, &err);
  if (!v) return rt_fail(&err);
  dvm_status st = dvm_model_shape(v->m, name, ninputs, names, inputs, nsyms, sym_names, sym_values, rank, shape);
  release(s, v);
  return st;
}

dvm_status rt_spec_cost(Spec *s, int ninputs, const char *const *names, dvm_tensor *const *inputs,
                        int nsyms, const char *const *sym_names, const int64_t *sym_values,
                        dvm_cost *out) {
  Err err = {0};
  Variant *v = acquire(s, ninputs, names, inputs, &err);
  if (!v) return rt_fail(&err);
  dvm_status st = dvm_model_cost(v->m, ninputs, names, inputs, nsyms, sym_names, sym_values, out);
  release(s, v);
  return st;
}

dvm_status rt_spec_run(Spec *s, int ninputs, const char *const *names, dvm_tensor *const *inputs,
                       dvm_tensor **outputs, dvm_tensor *const *into) {
  Err err = {0};
  Variant *v = acquire(s, ninputs, names, inputs, &err);
  if (!v) return rt_fail(&err);
  dvm_status st = into ? dvm_model_run_into(v->m, ninputs, names, inputs, into)
                       : dvm_model_run(v->m, ninputs, names, inputs, outputs);
  release(s, v);
  return st;
}

void rt_spec_wait(Spec *s) { /* the variants held, not locked, while their compiles finish */
  pthread_mutex_lock(&s->lock);
  Variant **held = malloc(((size_t)s->nvariants + 1) * sizeof *held);
  int n = 0;
  if (!held) ir_oom();
  for (Variant *v = s->variants; v; v = v->next) v->users++, held[n++] = v;
  pthread_mutex_unlock(&s->lock);
  for (int i = 0; i < n; i++) dvm_model_wait(held[i]->m);
  for (int i = 0; i < n; i++) release(s, held[i]);
  free(held);
}

void rt_spec_stats(Spec *s, dvm_stats *out) {
  pthread_mutex_lock(&s->lock);
  *out = s->retired;
  out->kernels = out->native_kernels = 0;
  for (Variant *v = s->variants; v; v = v->next) {
    dvm_stats st;
    dvm_model_stats(v->m, &st);
    add_stats(out, &st);
    if (v == s->variants) out->run_us = st.run_us; /* the last run's */
    out->code_bytes = st.code_bytes; /* the context's */
  }
  pthread_mutex_unlock(&s->lock);
}
