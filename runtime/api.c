/* runtime/api.c — the public API glue: per-thread last error, contexts, status names,
 * and the graph functions of include/dvm.h (parse, load, ONNX import over onnx/'s
 * onnx_import, print, build). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "../jit/jit.h"
#include "../onnx/onnx.h"
#include "pool.h"
#include "runtime.h"

static _Thread_local char last_error[1024];

dvm_status rt_fail(const Err *err) {
  snprintf(last_error, sizeof last_error, "%s", err->msg);
  return err->code;
}

dvm_status rt_ok(void) {
  last_error[0] = 0;
  return DVM_OK;
}

/* A call handed to another thread (rt_call_with_stack), with what it returned. */
typedef struct Handed {
  dvm_status (*fn)(void *);
  void *arg;
  dvm_status st;
  char msg[sizeof last_error];
} Handed;

static void *handed(void *p) {
  Handed *h = p;
  h->st = h->fn(h->arg);
  memcpy(h->msg, last_error, sizeof h->msg);
  return NULL;
}

dvm_status rt_call_with_stack(dvm_status (*fn)(void *), void *arg, size_t stack) {
  Handed h = {fn, arg, DVM_OK, ""};
  pthread_t t;
  if (ir_thread_start(&t, handed, &h, stack)) {
    Err err = {0};
    ir_err(&err, DVM_ERR_RUNTIME,
           "this thread's stack is too small and no thread with %zu KB of stack could be started",
           stack >> 10);
    return rt_fail(&err);
  }
  pthread_join(t, NULL);
  if (h.st == DVM_OK) return rt_ok();
  memcpy(last_error, h.msg, sizeof last_error);
  return h.st;
}

const char *dvm_last_error(void) { return last_error; }

const char *dvm_status_name(dvm_status s) {
  static const char *const names[] = {
      "DVM_OK",       "DVM_ERR_SYNTAX", "DVM_ERR_GRAPH",       "DVM_ERR_DTYPE",
      "DVM_ERR_SHAPE", "DVM_ERR_OVERFLOW", "DVM_ERR_DATA",     "DVM_ERR_IO",
      "DVM_ERR_UNSUPPORTED", "DVM_ERR_USAGE", "DVM_ERR_NOMEM", "DVM_ERR_RUNTIME"};
  return (unsigned)s < sizeof names / sizeof *names ? names[s] : "DVM_ERR_?";
}

/* ---- context --------------------------------------------------------------------------- */

/* The context owns the Jit (the LLJIT and the kernel cache), made on first use. */
struct dvm_context {
  pthread_mutex_t lock;
  Pool *pool;  /* made by the first model that runs native code, sized by its threads */
  Jit *jit;
  bool jit_tried;
  Err jit_err; /* why the Jit could not be made */
  ExtTable *ext; /* registered extern functions (runtime/ffi.c) */
  char *cache_dir; /* dvm_context_set_cache_dir, or NULL: the default */
  size_t code_limit; /* dvm_context_set_code_limit, or 0: DVM_CODE_CACHE_MB, else none */
  bool code_limit_set;
  struct Lazy *lazy; /* the lazy front end's state (runtime/lazy.c), made on first use */
};

struct Lazy *rt_context_lazy(dvm_context *ctx) {
  pthread_mutex_lock(&ctx->lock);
  if (!ctx->lazy) ctx->lazy = rt_lazy_new(ctx);
  struct Lazy *lz = ctx->lazy;
  pthread_mutex_unlock(&ctx->lock);
  return lz;
}

ExtTable *rt_context_externs(dvm_context *ctx) { return ctx->ext; }

Pool *rt_context_pool(dvm_context *ctx, int threads) {
  pthread_mutex_lock(&ctx->lock);
  if (!ctx->pool) ctx->pool = rt_pool_new(threads);
  Pool *p = ctx->pool;
  pthread_mutex_unlock(&ctx->lock);
  return p;
}

/* The bytes of native code a context keeps beyond what its models hold: its setting, else
 * DVM_CODE_CACHE_MB, else no limit (lock held). */
static size_t code_limit(const dvm_context *ctx) {
  if (ctx->code_limit_set) return ctx->code_limit;
  const char *env = getenv("DVM_CODE_CACHE_MB");
  char *end;
  long long mb = env ? strtoll(env, &end, 10) : 0;
  return env && *env && !*end && mb > 0 && mb < (1LL << 40) ? (size_t)mb << 20 : 0;
}

Jit *rt_context_jit(dvm_context *ctx, Err *err) {
  pthread_mutex_lock(&ctx->lock);
  if (!ctx->jit_tried) {
    ctx->jit_tried = true;
    const char *env = getenv("DVM_JIT"); /* off: no native code (auto stays on the reference path) */
    if (env && !strcmp(env, "off"))
      ir_err(&ctx->jit_err, DVM_ERR_UNSUPPORTED, "native code is disabled (DVM_JIT=off)");
    else
      ctx->jit = jit_new(rt_warm_up, ctx->cache_dir, code_limit(ctx), &ctx->jit_err);
  }
  Jit *j = ctx->jit;
  if (!j) *err = ctx->jit_err;
  pthread_mutex_unlock(&ctx->lock);
  return j;
}

dvm_status dvm_context_set_cache_dir(dvm_context *ctx, const char *dir) {
  Err err;
  if (!ctx || !dir) return rt_fail(&(Err){DVM_ERR_USAGE, "dvm_context_set_cache_dir: NULL argument"});
  pthread_mutex_lock(&ctx->lock);
  bool late = ctx->jit_tried;
  char *copy = late ? NULL : strdup(dir);
  if (copy) free(ctx->cache_dir), ctx->cache_dir = copy;
  pthread_mutex_unlock(&ctx->lock);
  if (late) return ir_err(&err, DVM_ERR_USAGE, "dvm_context_set_cache_dir: the context has compiled native code already"),
            rt_fail(&err);
  if (!copy) return rt_fail(&(Err){DVM_ERR_NOMEM, "out of memory"});
  return rt_ok();
}

static dvm_status cache_scan(const char *dir, bool remove, dvm_cache_info *out) {
  Err err;
  memset(out, 0, sizeof *out);
  if (!oc_dir(dir, out->dir, sizeof out->dir)) return out->dir[0] = '\0', rt_ok();
  if ((out->files = oc_scan(out->dir, remove, &out->bytes)) < 0)
    return ir_err(&err, DVM_ERR_IO, "cannot read the kernel cache %s: %s", out->dir, strerror(errno)), rt_fail(&err);
  return rt_ok();
}

dvm_status dvm_context_set_code_limit(dvm_context *ctx, size_t bytes) {
  Err err;
  if (!ctx) return rt_fail(&(Err){DVM_ERR_USAGE, "dvm_context_set_code_limit: NULL context"});
  pthread_mutex_lock(&ctx->lock);
  bool late = ctx->jit_tried;
  if (!late) ctx->code_limit = bytes, ctx->code_limit_set = true;
  pthread_mutex_unlock(&ctx->lock);
  if (late) return ir_err(&err, DVM_ERR_USAGE, "dvm_context_set_code_limit: the context has compiled native code already"),
            rt_fail(&err);
  return rt_ok();
}

dvm_status dvm_cache_info_get(const char *dir, dvm_cache_info *out) {
  if (!out) return rt_fail(&(Err){DVM_ERR_USAGE, "dvm_cache_info_get: out is NULL"});
  return cache_scan(dir, false, out);
}

dvm_status dvm_cache_clear(const char *dir, int64_t *removed) {
  dvm_cache_info info;
  dvm_status s = cache_scan(dir, true, &info);
  if (removed) *removed = s ? 0 : info.files;
  return s;
}

dvm_status dvm_context_create(dvm_context **out) {
  Err err;
  *out = calloc(1, sizeof **out);
  if (*out && !((*out)->ext = rt_ext_table_new())) free(*out), *out = NULL;
  if (!*out) return ir_err(&err, DVM_ERR_NOMEM, "out of memory"), rt_fail(&err);
  pthread_mutex_init(&(*out)->lock, NULL);
  return rt_ok();
}

void dvm_context_destroy(dvm_context *ctx) {
  if (!ctx) return;
  rt_lazy_free(ctx->lazy); /* its models first: they hold the Jit's code */
  jit_free(ctx->jit);
  rt_pool_free(ctx->pool);
  rt_ext_table_free(ctx->ext); /* after the Jit: native code calls these functions */
  pthread_mutex_destroy(&ctx->lock);
  free(ctx->cache_dir);
  free(ctx);
}

/* ---- graphs ---------------------------------------------------------------------------- */

static dvm_status wrap(dvm_context *ctx, Graph *ir, dvm_graph **out) {
  Err err;
  *out = calloc(1, sizeof **out);
  if (!*out) {
    ir_graph_free(ir);
    return ir_err(&err, DVM_ERR_NOMEM, "out of memory"), rt_fail(&err);
  }
  (*out)->ir = ir;
  (*out)->ctx = ctx;
  return rt_ok();
}

dvm_status dvm_graph_parse(dvm_context *ctx, const char *text, size_t len, const char *filename,
                           dvm_graph **out) {
  Err err = {0};
  *out = NULL;
  Graph *ir = ir_parse(text, len, filename ? filename : "<graph>", &err);
  if (!ir) return rt_fail(&err);
  return wrap(ctx, ir, out);
}

dvm_status dvm_graph_load(dvm_context *ctx, const char *path, dvm_graph **out) {
  Err err = {0};
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return ir_err(&err, DVM_ERR_IO, "cannot open '%s': %s", path, strerror(errno)), rt_fail(&err);
  VEC(char) text = {0};
  char buf[8192]; /* small: a host thread may have a small stack */
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    if (!vec_reserve(text, (uint32_t)n)) {
      fclose(f);
      vec_free(text);
      return ir_err(&err, DVM_ERR_NOMEM, "'%s' is too large", path), rt_fail(&err);
    }
    memcpy(text.v + text.n, buf, n);
    text.n += (uint32_t)n;
  }
  bool bad = ferror(f);
  fclose(f);
  if (bad) {
    vec_free(text);
    return ir_err(&err, DVM_ERR_IO, "cannot read '%s'", path), rt_fail(&err);
  }
  dvm_status st = dvm_graph_parse(ctx, text.v ? text.v : "", text.n, path, out);
  vec_free(text);
  return st;
}

void dvm_graph_destroy(dvm_graph *g) {
  if (!g) return;
  for (uint32_t v = 0; v < g->nvalues; v++) rt_tensor_free(g->values[v]);
  free(g->values);
  ir_graph_free(g->ir);
  free(g);
}

/* The whole file at path in a malloc'd buffer (*data, *n); err names the file. */
dvm_status rt_read_file(const char *path, char **data, size_t *n, Err *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return ir_err(err, DVM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
  char *buf = NULL;
  size_t len = 0, cap = 0, r;
  do {
    if (len == cap) {
      char *nb = cap < ((size_t)1 << 31) ? realloc(buf, cap = cap ? cap * 2 : 1 << 16) : NULL;
      if (!nb) {
        fclose(f);
        free(buf);
        return ir_err(err, DVM_ERR_NOMEM, "'%s' is too large", path);
      }
      buf = nb;
    }
    r = fread(buf + len, 1, cap - len, f);
    len += r;
  } while (r > 0);
  bool bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return ir_err(err, DVM_ERR_IO, "cannot read '%s'", path);
  }
  *data = buf;
  *n = len;
  return DVM_OK;
}

/* onnx_import's Graph, with the param values it made, as a graph. */
dvm_status rt_graph_parse_onnx(dvm_context *ctx, const void *data, size_t len, const char *filename,
                               const OnnxFixed *fixed, dvm_graph **out, char *need, size_t need_size) {
  Err err = {0};
  Graph *ir;
  Tensor **values;
  uint32_t nvalues;
  *out = NULL;
  if (onnx_import(data, len, filename, fixed, &ir, &values, &nvalues, &err, need, need_size))
    return rt_fail(&err);
  dvm_status st = wrap(ctx, ir, out);
  if (st) {
    for (uint32_t v = 0; v < nvalues; v++) rt_tensor_free(values[v]);
    free(values);
    return st;
  }
  (*out)->values = values;
  (*out)->nvalues = nvalues;
  return st;
}

dvm_status dvm_graph_parse_onnx(dvm_context *ctx, const void *data, size_t len,
                                const char *filename, dvm_graph **out) {
  return rt_graph_parse_onnx(ctx, data, len, filename, NULL, out, NULL, 0);
}

dvm_status dvm_graph_load_onnx(dvm_context *ctx, const char *path, dvm_graph **out) {
  Err err = {0};
  char *data = NULL;
  size_t n = 0;
  *out = NULL;
  if (rt_read_file(path, &data, &n, &err)) return rt_fail(&err);
  dvm_status st = dvm_graph_parse_onnx(ctx, data, n, path, out);
  free(data);
  return st;
}

dvm_tensor *dvm_graph_param_value(const dvm_graph *g, const char *name) {
  int64_t v = g && name ? ir_find(g->ir, name, strlen(name)) : -1;
  return v >= 0 && (uint32_t)v < g->nvalues ? g->values[v] : NULL;
}

dvm_status dvm_model_set_graph_params(dvm_model *m, const dvm_graph *g) {
  for (int i = 0; i < dvm_model_num_params(m); i++) {
    const char *name = dvm_model_param_name(m, i);
    dvm_tensor *t = dvm_graph_param_value(g, name);
    dvm_status st = t ? dvm_model_set_param(m, name, t) : DVM_OK;
    if (st) return st;
  }
  return rt_ok();
}

char *dvm_graph_print(const dvm_graph *g) { return ir_print(g->ir); }

dvm_status dvm_graph_create(dvm_context *ctx, const char *name, dvm_graph **out) {
  Err err;
  *out = NULL;
  name = name ? name : "graph";
  if (!ir_valid_name(name, strlen(name)))
    return ir_err(&err, DVM_ERR_USAGE, "'%s' is not a valid graph name", name), rt_fail(&err);
  Graph *ir = ir_graph_new("<builder>");
  if (!ir) return ir_err(&err, DVM_ERR_NOMEM, "out of memory"), rt_fail(&err);
  ir->name = ir_str(ir, name, strlen(name));
  return wrap(ctx, ir, out);
}

static int32_t declare(dvm_graph *g, Op op, const char *name, dvm_dtype dt, int rank,
                       const char *const *dims, int nvalues, const char *const *values) {
  Err err = {0};
  NodeDraft d = {.op = op, .name = name, .name_len = name ? strlen(name) : 0, .dtype = dt};
  if (!name || (unsigned)dt >= DT_COUNT || rank < 0 || rank > DVM_MAX_RANK || nvalues < 0 ||
      nvalues > IR_VALUES_MAX || (nvalues && !values))
    return ir_err(&err, DVM_ERR_USAGE, "%s: bad name, dtype, rank or values", ir_ops[op].name),
           rt_fail(&err), -1;
  d.rank = (uint8_t)rank;
  uint32_t nsyms = g->ir->syms.n; /* a failed call declares no symbol */
  for (int i = 0; i < rank; i++)
    if (ir_parse_dim(g->ir, dims[i], true, 0, &d.shape[i], &err)) return g->ir->syms.n = nsyms, rt_fail(&err), -1;
  if (values) {
    Dim vd[IR_VALUES_MAX];
    for (int i = 0; i < nvalues; i++)
      if (ir_parse_dim(g->ir, values[i], true, 0, &vd[i], &err)) return g->ir->syms.n = nsyms, rt_fail(&err), -1;
    d.attr[d.nattr++] = (Attr){.key = AK_VALUES, .kind = AV_DIMLIST, .off = g->ir->lists.n, .n = (uint32_t)nvalues};
    for (int i = 0; i < nvalues; i++) vec_push(g->ir->lists, (int64_t)vd[i]);
  }
  int64_t v = ir_add_node(g->ir, &d, &err);
  if (v < 0) return g->ir->syms.n = nsyms, rt_fail(&err), -1;
  rt_ok();
  return (int32_t)v;
}

int32_t dvm_graph_input(dvm_graph *g, const char *name, dvm_dtype dt, int rank,
                        const char *const *dims) {
  return declare(g, OP_INPUT, name, dt, rank, dims, 0, NULL);
}

int32_t dvm_graph_input_values(dvm_graph *g, const char *name, dvm_dtype dt, int rank,
                               const char *const *dims, int nvalues, const char *const *values) {
  return declare(g, OP_INPUT, name, dt, rank, dims, nvalues, values);
}

int32_t dvm_graph_param(dvm_graph *g, const char *name, dvm_dtype dt, int rank,
                        const char *const *dims) {
  return declare(g, OP_PARAM, name, dt, rank, dims, 0, NULL);
}

int32_t dvm_graph_literal(dvm_graph *g, double value, dvm_dtype dt) {
  Err err = {0};
  if ((unsigned)dt >= DT_COUNT) return ir_err(&err, DVM_ERR_USAGE, "bad dtype"), rt_fail(&err), -1;
  bool isint = !ir_dtype_is_float(dt);
  if (isint && (value != (double)(int64_t)value))
    return ir_err(&err, DVM_ERR_DTYPE, "literal %g is not an integer (dtype %s)", value,
                  ir_dtype_name(dt)),
           rt_fail(&err), -1;
  NodeDraft d = {.op = OP_LITERAL, .dtype = dt, .nattr = 1};
  d.attr[0] = (Attr){.key = AK_VALUE, .kind = AV_FLOAT, .isint = isint,
                     .i = isint ? (int64_t)value : 0, .f = value};
  int64_t v = ir_add_node(g->ir, &d, &err);
  if (v < 0) return rt_fail(&err), -1;
  rt_ok();
  return (int32_t)v;
}

int32_t dvm_graph_op(dvm_graph *g, const char *name, const char *op, int noperands,
                     const int32_t *operands, const char *attrs) {
  Err err = {0};
  int k = op ? ir_op_lookup(op, strlen(op)) : -1;
  if (k < 0 || ir_ops[k].kind == OPK_SOURCE)
    return ir_err(&err, DVM_ERR_GRAPH, "unknown op '%s'", op ? op : "(null)"), rt_fail(&err), -1;
  if (noperands < 0 || noperands > 64)
    return ir_err(&err, DVM_ERR_USAGE, "%s: %d operands", op, noperands), rt_fail(&err), -1;
  char fresh[32];
  if (!name) {
    do snprintf(fresh, sizeof fresh, "_t%u", g->fresh++);
    while (ir_find(g->ir, fresh, strlen(fresh)) >= 0);
    name = fresh;
  }
  NodeDraft d = {.op = (Op)k, .name = name, .name_len = strlen(name), .nin = (uint32_t)noperands};
  for (int i = 0; i < noperands; i++) {
    if (operands[i] < 0 || (uint32_t)operands[i] >= g->ir->nodes.n)
      return ir_err(&err, DVM_ERR_USAGE, "%s: operand %d is not a value id", op, i + 1),
             rt_fail(&err), -1;
    d.in[i] = (uint32_t)operands[i];
  }
  uint32_t nsyms = g->ir->syms.n; /* a failed call declares no symbol */
  if (attrs && ir_parse_attrs(g->ir, attrs, &d, &err)) return g->ir->syms.n = nsyms, rt_fail(&err), -1;
  int64_t v = ir_add_node(g->ir, &d, &err);
  if (v < 0) return g->ir->syms.n = nsyms, rt_fail(&err), -1;
  rt_ok();
  return (int32_t)v;
}

dvm_status dvm_graph_output(dvm_graph *g, int32_t value) {
  Err err;
  if (value < 0 || (uint32_t)value >= g->ir->nodes.n || ir_node(g->ir, (uint32_t)value)->op == OP_LITERAL)
    return ir_err(&err, DVM_ERR_USAGE, "output: %d is not a named value", value), rt_fail(&err);
  vec_push(g->ir->outputs, (uint32_t)value);
  g->ir->finished = false;
  return rt_ok();
}

int32_t dvm_graph_find(const dvm_graph *g, const char *name) {
  return name ? (int32_t)ir_find(g->ir, name, strlen(name)) : -1;
}

const char *dvm_dump_stage(int i) { return i >= 0 && i < RT_NSTAGES ? rt_stages[i] : NULL; }

/* The pipeline up to the stage asked for (rt_compile); native code by a Jit of the dump's
 * own, so that its text is always recorded. */
char *dvm_graph_dump(const dvm_graph *g, const char *stage) {
  Err err = {0};
  Pipeline pl = {.ctx = g->ctx, .dump = -1};
  for (int s = 0; s < RT_NSTAGES; s++)
    if (stage && !strcmp(stage, rt_stages[s])) pl.dump = s;
  if (!stage) pl.dump = RT_IR;
  if (pl.dump < 0) {
    Buf names = {0};
    for (int s = 0; s < RT_NSTAGES; s++) ir_put(&names, "%s%s", s ? ", " : "", rt_stages[s]);
    char *list = ir_buf_done(&names);
    ir_err(&err, DVM_ERR_USAGE, "unknown stage '%s' (%s)", stage, list);
    free(list);
    return rt_fail(&err), NULL;
  }
  pl.encode = pl.dump == RT_BYTECODE;
  if ((pl.dump == RT_LLVM || pl.dump == RT_ASM) && !(pl.jit = jit_new(rt_warm_up, "off", 0, &err)))
    return rt_fail(&err), NULL;
  dvm_status st = rt_compile(&pl, g->ir, &err);
  char *text = pl.text;
  pl.text = NULL;
  rt_pipeline_free(&pl);
  jit_free(pl.jit);
  if (st) return rt_fail(&err), NULL;
  return rt_ok(), text;
}
