/* onnx/read.c — reading an ONNX model into a dvm graph (onnx.h): the protobuf, the opset
 * check, tensors (initializers, Constant values), the graph's inputs (dim_param names
 * become symbols) and outputs, and the driver. The driver first recognizes fused patterns
 * (erf GELU, SiLU), then drops nodes no output depends on, then translates the rest in
 * file order (ops.c). Every failure names the file and, during translation, the node's
 * 1-based number (the "line" of the dvm nodes it makes), name and op type; a malformed
 * file is an error, never a crash. Also onnx_import, the front end's entry point. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "onnx.h"

/* ---- string map ------------------------------------------------------------------------ */

static uint32_t str_hash(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

bool onnx_map_get(const SMap *m, const char *key, uint32_t *out) {
  if (!m->cap || !key) return false;
  for (uint32_t i = str_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    if (!m->key[i]) return false;
    if (!strcmp(m->key[i], key)) return *out = m->val[i], true;
  }
}

void onnx_map_put(SMap *m, const char *key, uint32_t val) {
  if ((m->n + 1) * 2 > m->cap) {
    SMap b = {.cap = m->cap ? m->cap * 2 : 64};
    b.key = calloc(b.cap, sizeof *b.key);
    b.val = calloc(b.cap, sizeof *b.val);
    if (!b.key || !b.val) ir_oom();
    for (uint32_t i = 0; i < m->cap; i++)
      if (m->key[i]) onnx_map_put(&b, m->key[i], m->val[i]);
    onnx_map_free(m);
    *m = b;
  }
  uint32_t i = str_hash(key) & (m->cap - 1);
  while (m->key[i] && strcmp(m->key[i], key)) i = (i + 1) & (m->cap - 1);
  if (!m->key[i]) m->n++;
  m->key[i] = key;
  m->val[i] = val;
}

void onnx_map_free(SMap *m) {
  free(m->key);
  free(m->val);
  *m = (SMap){0};
}

/* ---- errors and dtypes ------------------------------------------------------------------ */

dvm_status onnx_fail(Imp *I, dvm_status code, const char *fmt, ...) {
  char msg[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const char *m = msg, *file = I->g->file;
  size_t fl = strlen(file);
  if (!strncmp(m, file, fl) && m[fl] == ':') { /* an ir message: drop its FILE:LINE: */
    const char *p = m + fl + 1;
    while (*p >= '0' && *p <= '9') p++;
    if (*p == ':' && p[1] == ' ') m = p + 2;
  }
  const Onnx__NodeProto *n = I->node;
  if (n) {
    const char *name = n->name && *n->name ? n->name : n->n_output && n->output[0] ? n->output[0] : "";
    snprintf(I->err->msg, sizeof I->err->msg, "%s:%u: node %u '%.120s' (%.60s): %s", file,
             I->nodeno, I->nodeno, name, n->op_type ? n->op_type : "?", m);
  } else {
    snprintf(I->err->msg, sizeof I->err->msg, "%s: %s", file, m);
  }
  for (char *c = I->err->msg; *c; c++) /* names from a corrupt file: printable ASCII only */
    if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) *c = '?';
  I->err->code = code;
  return code;
}

int onnx_dtype(int64_t t) {
  switch (t) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return DT_F32;
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: return DT_F16;
  case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: return DT_BF16;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return DT_I32;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return DT_I64;
  case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return DT_BOOL;
  case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: return DT_F64;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: return DT_I8;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: return DT_I16;
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: return DT_U8;
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: return DT_U16;
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: return DT_U32;
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: return DT_U64;
  default: return -1;
  }
}

const char *onnx_dtype_name(int64_t t) {
  static const char *const names[] = {"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16",
                                      "INT32", "INT64", "STRING", "BOOL", "FLOAT16", "DOUBLE",
                                      "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16"};
  return t >= 0 && t < (int64_t)(sizeof names / sizeof *names) ? names[t] : "unknown";
}

/* ---- tensors ------------------------------------------------------------------------------ */

/* The element count of a shape of non-negative dims, or -1 when the product of its nonzero
 * dims overflows (the runtime's rule for tensors). */
static int64_t count(int rank, const int64_t *shape) {
  int64_t p = 1;
  bool zero = false;
  for (int i = 0; i < rank; i++) {
    if (shape[i] == 0) zero = true;
    else if (__builtin_mul_overflow(p, shape[i], &p)) return -1;
  }
  return zero ? 0 : p;
}

/* A constant Val named `name` holding t (taken): small i64, i32 and bool tensors become
 * dims (the shapes' types: load-time arithmetic on dims is exact in int64, which at the
 * narrower and unsigned widths would not wrap as their run-time arithmetic does). */
static uint32_t constant_val(Imp *I, dvm_tensor *t, const char *name) {
  DType dt = (DType)dvm_tensor_dtype(t);
  int64_t numel = dvm_tensor_numel(t);
  uint32_t k;
  if ((dt != DT_I64 && dt != DT_I32 && dt != DT_BOOL) || numel > SYM_MAX) return onnx_val_const(I, t, name);
  Dim d[SYM_MAX];
  for (int64_t i = 0; i < numel; i++) d[i] = ir_dim_const(I->g, dvm_tensor_get_i64(t, i));
  k = onnx_val_sym(I, dt, dvm_tensor_rank(t), dvm_tensor_shape(t), d);
  onnx_val(I, k)->name = name;
  dvm_tensor_destroy(t);
  return k;
}

dvm_status onnx_tensor(Imp *I, const Onnx__TensorProto *tp, const char *what, uint32_t *out) {
  int dt = tp->has_data_type ? onnx_dtype(tp->data_type) : -1;
  if (dt < 0)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "%s has data type %s, which dvm does not support "
                     "(float, double, float16, bfloat16, the 8- to 64-bit integers, bool)", what,
                     tp->has_data_type ? onnx_dtype_name(tp->data_type) : "(none)");
  if (tp->n_dims > DVM_MAX_RANK)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "%s has rank %zu, more than %d", what, tp->n_dims,
                     DVM_MAX_RANK);
  if (tp->segment) return onnx_fail(I, DVM_ERR_UNSUPPORTED, "%s is segmented", what);
  int64_t shape[DVM_MAX_RANK];
  for (size_t i = 0; i < tp->n_dims; i++) {
    if (tp->dims[i] < 0) return onnx_fail(I, DVM_ERR_DATA, "%s has a negative dim", what);
    shape[i] = tp->dims[i];
  }
  /* the data must be there before anything is allocated (a corrupt file may claim any shape) */
  int64_t numel = count((int)tp->n_dims, shape);
  size_t esz = ir_dtype_size((DType)dt);
  dvm_tensor *t = NULL;
  size_t n = (size_t)numel;
  if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
    if (numel < 0) return onnx_fail(I, DVM_ERR_OVERFLOW, "%s: element count overflows", what);
    if (onnx_external(I, tp, what, (DType)dt, (int)tp->n_dims, shape, numel, &t)) return I->err->code;
    goto loaded;
  }
  /* the typed fields: float_data, double_data, int64_data, uint64_data (uint32 and uint64)
     and int32_data (the narrower integers, bool, float16 and bfloat16 bits) */
  size_t have = tp->has_raw_data                   ? tp->raw_data.len / esz
                : dt == DT_F32                     ? tp->n_float_data
                : dt == DT_F64                     ? tp->n_double_data
                : dt == DT_I64                     ? tp->n_int64_data
                : dt == DT_U32 || dt == DT_U64     ? tp->n_uint64_data
                                                   : tp->n_int32_data;
  if (numel < 0 || (uint64_t)numel != have || (tp->has_raw_data && tp->raw_data.len % esz)) {
    if (numel < 0) return onnx_fail(I, DVM_ERR_OVERFLOW, "%s: element count overflows", what);
    if (tp->has_raw_data)
      return onnx_fail(I, DVM_ERR_DATA, "%s holds %zu bytes of raw data, its shape needs %llu",
                       what, tp->raw_data.len, (unsigned long long)numel * esz);
    return onnx_fail(I, DVM_ERR_DATA, "%s holds data for %zu elements, its shape has %lld", what,
                     have, (long long)numel);
  }
  if (!(t = onnx_tensor_new(I, (DType)dt, (int)tp->n_dims, shape, what))) return I->err->code;
  void *data = dvm_tensor_data(t);
  if (tp->has_raw_data) {
    if (n) memcpy(data, tp->raw_data.data, n * esz);
  } else if (dt == DT_F32) {
    for (size_t i = 0; i < n; i++) ((float *)data)[i] = tp->float_data[i];
  } else if (dt == DT_F64) {
    for (size_t i = 0; i < n; i++) ((double *)data)[i] = tp->double_data[i];
  } else if (dt == DT_I64) {
    for (size_t i = 0; i < n; i++) ((int64_t *)data)[i] = tp->int64_data[i];
  } else if (dt == DT_U32 || dt == DT_U64) {
    for (size_t i = 0; i < n; i++)
      if (dt == DT_U32) ((uint32_t *)data)[i] = (uint32_t)tp->uint64_data[i];
      else ((uint64_t *)data)[i] = tp->uint64_data[i];
  } else {
    for (size_t i = 0; i < n; i++) { /* each element's bits, in the low bits of an int32 */
      int32_t x = tp->int32_data[i];
      if (dt == DT_BOOL) ((uint8_t *)data)[i] = x != 0;
      else if (esz == 1) ((uint8_t *)data)[i] = (uint8_t)x;
      else if (esz == 2) ((uint16_t *)data)[i] = (uint16_t)x;
      else ((int32_t *)data)[i] = x;
    }
  }
loaded:
  if (dt == DT_BOOL)
    for (size_t i = 0; i < n; i++) ((uint8_t *)dvm_tensor_data(t))[i] = ((uint8_t *)dvm_tensor_data(t))[i] != 0;
  *out = constant_val(I, t, tp->name);
  return DVM_OK;
}

/* ---- declarations ----------------------------------------------------------------------- */

/* Input `name`, declared as d, with its values given: the name stands for a constant Val
 * (dims, like a small integer initializer, or a tensor), checked against the declaration.
 * With `bind` (and dtype int64), the input stays (the node is added here) with the
 * elements onnx_binds keeps as symbols of its own and the rest as constants, its `values`;
 * its Val is those dims. */
static dvm_status fixed_input(Imp *I, const char *name, NodeDraft *d, dvm_tensor *t, bool bind) {
  int rank = dvm_tensor_rank(t);
  const int64_t *shape = dvm_tensor_shape(t);
  int64_t numel = dvm_tensor_numel(t), c;
  bool same = (DType)dvm_tensor_dtype(t) == d->dtype && rank == d->rank;
  for (int i = 0; same && i < rank; i++) same = ir_dim_is_const(I->g, d->shape[i], &c) && c == shape[i];
  if (!same) return onnx_fail(I, DVM_ERR_SHAPE, "input '%s': the values given do not have its declared dtype "
                              "and static shape", name);
  if (bind && d->dtype == DT_I64 && numel <= SYM_MAX) {
    Dim dims[SYM_MAX];
    char dname[256], sym[280];
    onnx_name(I, name, dname, sizeof dname); /* the node's name, as onnx_add will make it */
    for (int64_t i = 0; i < numel; i++) {
      int64_t x = dvm_tensor_get_i64(t, i);
      if (!onnx_binds(x)) {
        dims[i] = ir_dim_const(I->g, x);
        continue;
      }
      int w = snprintf(sym, sizeof sym, "%s[%lld]", dname, (long long)i); /* '[': no model's name */
      uint32_t id = ir_sym_get(I->g, sym, (size_t)w, 0);
      I->g->syms.v[id].data = true; /* ops compare it with other dims: kept free */
      dims[i] = ir_dim_sym(I->g, id);
      vec_push(I->vsyms, id);
      vec_push(I->velems, (uint32_t)i);
    }
    onnx_at_dims(I, d, AK_VALUES, dims, (uint32_t)numel);
    int64_t v = onnx_add(I, d, name);
    if (v < 0) return I->err->code;
    while (I->vnodes.n < I->vsyms.n) vec_push(I->vnodes, (uint32_t)v);
    uint32_t k = onnx_val_sym(I, d->dtype, rank, shape, dims);
    onnx_val(I, k)->v = v; /* as data: the input itself */
    onnx_val(I, k)->name = name;
    onnx_map_put(&I->names, name, k);
    return DVM_OK;
  }
  dvm_tensor *copy = onnx_tensor_new(I, d->dtype, rank, shape, name);
  if (!copy) return I->err->code;
  if (numel) memcpy(dvm_tensor_data(copy), dvm_tensor_data(t), (size_t)numel * ir_dtype_size(d->dtype));
  onnx_map_put(&I->names, name, constant_val(I, copy, name));
  return DVM_OK;
}

static dvm_status declare_input(Imp *I, const Onnx__ValueInfoProto *vi) {
  const char *name = vi->name ? vi->name : "";
  const Onnx__TypeProto *tp = vi->type;
  if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "input '%s' is not a tensor", name);
  const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
  int dt = tt->has_elem_type ? onnx_dtype(tt->elem_type) : -1;
  if (dt < 0)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "input '%s' has element type %s, which dvm does "
                     "not support", name, onnx_dtype_name(tt->has_elem_type ? tt->elem_type : 0));
  if (!tt->shape) return onnx_fail(I, DVM_ERR_UNSUPPORTED, "input '%s' has no shape", name);
  if (tt->shape->n_dim > DVM_MAX_RANK)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "input '%s' has rank %zu, more than %d", name,
                     tt->shape->n_dim, DVM_MAX_RANK);
  NodeDraft d = {.op = OP_INPUT, .dtype = (DType)dt, .rank = (uint8_t)tt->shape->n_dim};
  for (size_t i = 0; i < tt->shape->n_dim; i++) {
    const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[i];
    char sym[256], hint[300];
    if (dim && dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
      if (dim->dim_value < 0)
        return onnx_fail(I, DVM_ERR_DATA, "input '%s' has a negative dim", name);
      d.shape[i] = ir_dim_const(I->g, dim->dim_value);
      continue;
    }
    const char *p = dim && dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                        ? dim->dim_param : NULL;
    if (!p || !*p) { /* an unnamed dynamic dim: a symbol of its own */
      snprintf(hint, sizeof hint, "%s_d%zu", name, i);
      p = hint;
    }
    onnx_base_name(p, sym, sizeof sym);
    size_t k = strlen(sym);
    d.shape[i] = ir_dim_sym(I->g, ir_sym_get(I->g, sym, k, 0));
  }
  char dname[256];
  onnx_name(I, name, dname, sizeof dname); /* as onnx_add names the node */
  for (int i = 0; I->fixed && i < I->fixed->n; i++)
    if (!strcmp(I->fixed->names[i], dname) && I->fixed->bind && I->fixed->bind[i] && d.dtype == DT_I64)
      return fixed_input(I, name, &d, I->fixed->values[i], true);
  int64_t v = onnx_add(I, &d, name);
  if (v < 0) return I->err->code;
  for (int i = 0; I->fixed && i < I->fixed->n; i++)
    if (!strcmp(I->fixed->names[i], ir_s(I->g, ir_node(I->g, (uint32_t)v)->name)))
      return fixed_input(I, name, &d, I->fixed->values[i], false);
  uint32_t k = onnx_val_dyn(I, (uint32_t)v);
  onnx_val(I, k)->name = name;
  onnx_map_put(&I->names, name, k);
  return DVM_OK;
}

/* ---- patterns and liveness --------------------------------------------------------------- */

typedef struct Scan {
  const Onnx__GraphProto *gp;
  SMap prod;  /* value name -> index of the node defining it */
  SMap inits; /* initializer name -> index */
} Scan;

static const Onnx__NodeProto *producer(const Scan *s, const char *name, const char *op) {
  uint32_t k;
  if (!onnx_map_get(&s->prod, name, &k)) return NULL;
  const Onnx__NodeProto *n = s->gp->node[k];
  return n->op_type && !strcmp(n->op_type, op) ? n : NULL;
}

/* A one-element float tensor's value. */
static bool tensor_scalar(const Onnx__TensorProto *t, double *out) {
  if (!t || !t->has_data_type || t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) return false;
  for (size_t i = 0; i < t->n_dims; i++)
    if (t->dims[i] != 1) return false;
  if (t->n_float_data == 1) return *out = t->float_data[0], true;
  if (t->has_raw_data && t->raw_data.len == 4) {
    float f;
    memcpy(&f, t->raw_data.data, 4);
    return *out = f, true;
  }
  return false;
}

/* Is value `name` the float constant c (an initializer or a Constant node)? */
static bool is_const(const Scan *s, const char *name, double c, double tol) {
  uint32_t k;
  double x;
  const Onnx__TensorProto *t = NULL;
  const Onnx__NodeProto *n = producer(s, name, "Constant");
  if (onnx_map_get(&s->inits, name, &k)) t = s->gp->initializer[k];
  else if (n)
    for (size_t i = 0; i < n->n_attribute; i++)
      if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, "value")) t = n->attribute[i]->t;
  return tensor_scalar(t, &x) && fabs(x - c) <= tol;
}

static bool binary(const Onnx__NodeProto *n) {
  return n && n->n_input == 2 && n->input[0] && n->input[1];
}

/* 1 + erf(x / sqrt 2) (or x * (1/sqrt 2)): its x, or NULL. */
static const char *erf_term(const Scan *s, const char *name) {
  const Onnx__NodeProto *a = producer(s, name, "Add"), *e, *d;
  if (!binary(a)) return NULL;
  for (int i = 0; i < 2; i++) {
    if (!is_const(s, a->input[1 - i], 1.0, 0) || !(e = producer(s, a->input[i], "Erf")) ||
        e->n_input != 1 || !e->input[0])
      continue;
    if (binary(d = producer(s, e->input[0], "Div")) && is_const(s, d->input[1], M_SQRT2, 1e-6))
      return d->input[0];
    if (binary(d = producer(s, e->input[0], "Mul")))
      for (int j = 0; j < 2; j++)
        if (is_const(s, d->input[1 - j], M_SQRT1_2, 1e-6)) return d->input[j];
  }
  return NULL;
}

/* Mul node n as the root of x·0.5·(1 + erf(x/√2)) (any grouping of the three factors) or
 * x·sigmoid(x): the pattern and its x. */
static Fuse match(const Scan *s, const Onnx__NodeProto *n, const char **x) {
  if (!binary(n) || !n->op_type || strcmp(n->op_type, "Mul")) return FUSE_NONE;
  for (int i = 0; i < 2; i++) {
    const Onnx__NodeProto *sg = producer(s, n->input[i], "Sigmoid");
    if (sg && sg->n_input == 1 && sg->input[0] && !strcmp(sg->input[0], n->input[1 - i]))
      return *x = n->input[1 - i], FUSE_SILU;
  }
  for (int i = 0; i < 2; i++) {
    const Onnx__NodeProto *m = producer(s, n->input[i], "Mul");
    if (!binary(m)) continue;
    const char *f[3] = {m->input[0], m->input[1], n->input[1 - i]};
    for (int h = 0; h < 3; h++) { /* f[h] = 0.5, then one of the others is the erf term */
      if (!is_const(s, f[h], 0.5, 0)) continue;
      for (int k = 0; k < 3; k++) {
        if (k == h) continue;
        const char *ex = erf_term(s, f[k]), *other = f[3 - h - k];
        if (ex && !strcmp(ex, other)) return *x = ex, FUSE_GELU;
      }
    }
  }
  return FUSE_NONE;
}

/* ---- the driver ------------------------------------------------------------------------- */

static dvm_status check_opset(Imp *I, const Onnx__ModelProto *mp) {
  I->opset = -1;
  for (size_t i = 0; i < mp->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
    if (o && (!o->domain || !*o->domain || !strcmp(o->domain, "ai.onnx")) && o->has_version)
      I->opset = o->version;
  }
  if (I->opset < 0)
    return onnx_fail(I, DVM_ERR_DATA, "the model imports no ai.onnx opset (not an ONNX model?)");
  if (I->opset < ONNX_OPSET_MIN || I->opset > ONNX_OPSET_MAX)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "opset %lld is out of the supported range %d-%d",
                     (long long)I->opset, ONNX_OPSET_MIN, ONNX_OPSET_MAX);
  return DVM_OK;
}

/* The graph's outputs: each a named dvm value (a copy when the value has another name). */
static dvm_status outputs(Imp *I, const Onnx__GraphProto *gp) {
  if (!gp->n_output) return onnx_fail(I, DVM_ERR_GRAPH, "the graph has no outputs");
  for (size_t i = 0; i < gp->n_output; i++) {
    const char *name = gp->output[i] && gp->output[i]->name ? gp->output[i]->name : "";
    uint32_t k, v;
    if (!onnx_map_get(&I->names, name, &k))
      return onnx_fail(I, DVM_ERR_GRAPH, "output '%s' is not computed by any node", name);
    if (onnx_use(I, k, &v)) return I->err->code;
    char want[256];
    onnx_base_name(name, want, sizeof want);
    bool named = !strcmp(ir_s(I->g, ir_node(I->g, v)->name), want);
    bool listed = false;
    for (uint32_t j = 0; j < I->g->outputs.n; j++) listed |= I->g->outputs.v[j] == v;
    if (!named || listed) { /* a copy under the output's name: reshape to its own shape */
      Dim s[DVM_MAX_RANK];
      int r = onnx_dims(I, k, s);
      NodeDraft d = {.op = OP_RESHAPE, .nin = 1, .in = {v}};
      onnx_at_dims(I, &d, AK_SHAPE, s, (uint32_t)r);
      int64_t c = onnx_add(I, &d, name);
      if (c < 0) return I->err->code;
      v = (uint32_t)c;
    }
    vec_push(I->g->outputs, v);
  }
  return DVM_OK;
}

/* Initializers (decoded unless only their names are wanted), then the inputs that are not
 * initializers. */
static dvm_status declare(Imp *I, const Onnx__GraphProto *gp, Scan *s, bool decode) {
  dvm_status st = DVM_OK;
  for (size_t i = 0; i < gp->n_initializer && !st; i++) {
    const Onnx__TensorProto *t = gp->initializer[i];
    char what[300];
    uint32_t k;
    if (!t || !t->name || !*t->name) return onnx_fail(I, DVM_ERR_DATA, "initializer %zu has no name", i + 1);
    snprintf(what, sizeof what, "initializer '%.200s'", t->name);
    if (onnx_map_get(&s->inits, t->name, &k)) return onnx_fail(I, DVM_ERR_DATA, "%s is defined twice", what);
    if (!decode) onnx_map_put(&s->inits, t->name, (uint32_t)i);
    else if (!(st = onnx_tensor(I, t, what, &k))) {
      onnx_map_put(&I->names, t->name, k);
      onnx_map_put(&s->inits, t->name, (uint32_t)i);
    }
  }
  for (size_t i = 0; i < gp->n_input && !st; i++) {
    uint32_t k;
    if (!gp->input[i] || !gp->input[i]->name) return onnx_fail(I, DVM_ERR_DATA, "input %zu has no name", i + 1);
    if (!onnx_map_get(&s->inits, gp->input[i]->name, &k)) st = declare_input(I, gp->input[i]);
  }
  return st;
}

static dvm_status import(Imp *I, const Onnx__ModelProto *mp) {
  if (check_opset(I, mp)) return I->err->code;
  const Onnx__GraphProto *gp = mp->graph;
  if (!gp) return onnx_fail(I, DVM_ERR_DATA, "the model has no graph (not an ONNX model?)");
  char gname[256];
  onnx_name(I, gp->name && *gp->name ? gp->name : "onnx", gname, sizeof gname);
  I->g->name = ir_str(I->g, gname, strlen(gname));
  Scan s = {.gp = gp};
  dvm_status st = DVM_OK;
  uint8_t *live = NULL;
  Fuse *fuse = NULL;
  const char **fx = NULL;
  SMap need = {0};
  st = declare(I, gp, &s, true);
  if (st) goto out;
  /* producers, patterns, then liveness from the outputs back */
  size_t nn = gp->n_node;
  live = calloc(nn + 1, 1);
  fuse = calloc(nn + 1, sizeof *fuse);
  fx = calloc(nn + 1, sizeof *fx);
  if (!live || !fuse || !fx) ir_oom();
  for (size_t k = 0; k < nn; k++) {
    const Onnx__NodeProto *n = gp->node[k];
    for (size_t j = 0; n && j < n->n_output; j++)
      if (n->output[j] && *n->output[j]) onnx_map_put(&s.prod, n->output[j], (uint32_t)k);
  }
  for (size_t k = 0; k < nn; k++)
    if (gp->node[k]) fuse[k] = match(&s, gp->node[k], &fx[k]);
  for (size_t i = 0; i < gp->n_output; i++)
    if (gp->output[i] && gp->output[i]->name) onnx_map_put(&need, gp->output[i]->name, 1);
  for (size_t k = nn; k-- > 0;) {
    const Onnx__NodeProto *n = gp->node[k];
    uint32_t one;
    for (size_t j = 0; n && j < n->n_output && !live[k]; j++)
      live[k] = n->output[j] && onnx_map_get(&need, n->output[j], &one);
    if (!live[k]) continue;
    if (fuse[k]) onnx_map_put(&need, fx[k], 1);
    else
      for (size_t j = 0; j < n->n_input; j++)
        if (n->input[j] && *n->input[j]) onnx_map_put(&need, n->input[j], 1);
  }
  for (size_t k = 0; k < nn && !st; k++) {
    const Onnx__NodeProto *n = gp->node[k];
    if (!live[k]) continue;
    I->node = n;
    I->nodeno = (uint32_t)k + 1;
    I->fuse = fuse[k];
    I->fuse_x = fx[k];
    if (!n->op_type || !*n->op_type) st = onnx_fail(I, DVM_ERR_DATA, "the node has no op type");
    else if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx"))
      st = onnx_fail(I, DVM_ERR_UNSUPPORTED, "op %s of domain '%s' is not supported (only the "
                     "default ai.onnx domain is)", n->op_type, n->domain);
    else st = onnx_node(I);
  }
  I->node = NULL;
  I->nodeno = 0;
  if (!st) st = outputs(I, gp);
  if (!st) {
    Err e = {0};
    if (ir_finish(I->g, &e)) st = onnx_fail(I, e.code, "%s", e.msg);
  }
out:
  free(live);
  free(fuse);
  free(fx);
  onnx_map_free(&need);
  onnx_map_free(&s.prod);
  onnx_map_free(&s.inits);
  return st;
}

/* ---- the entry point ---------------------------------------------------------------------- */

/* Unpack the model and run `fn` on it with a fresh Imp; on failure nothing is kept. */
static dvm_status with_model(const void *data, size_t len, Imp *I,
                             dvm_status (*fn)(Imp *, const Onnx__ModelProto *, void *), void *arg) {
  if (!(I->g = ir_graph_new(I->path ? I->path : "<onnx>"))) return ir_err(I->err, DVM_ERR_NOMEM, "out of memory");
  Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, data);
  dvm_status st;
  if (!mp)
    st = onnx_fail(I, DVM_ERR_DATA, "not an ONNX model: the file does not parse as a "
                   "protobuf ModelProto (truncated or another format)");
  else if (!mp->has_ir_version || mp->ir_version < 3)
    st = onnx_fail(I, DVM_ERR_DATA, "not an ONNX model: no ir_version >= 3");
  else
    st = fn(I, mp, arg);
  for (uint32_t i = 0; i < I->vals.n; i++) {
    dvm_tensor_destroy(I->vals.v[i].t);
    free(I->vals.v[i].d);
  }
  vec_free(I->vals);
  vec_free(I->vsyms);
  vec_free(I->vnodes);
  vec_free(I->velems);
  onnx_map_free(&I->names);
  if (mp) onnx__model_proto__free_unpacked(mp, NULL);
  if (st) {
    for (uint32_t v = 0; v < I->values.n; v++) dvm_tensor_destroy(I->values.v[v]);
    vec_free(I->values);
    ir_graph_free(I->g);
    I->g = NULL;
  }
  return st;
}

typedef struct ImportOut {
  char *need;
  size_t need_size;
} ImportOut;

static dvm_status import_fn(Imp *I, const Onnx__ModelProto *mp, void *arg) {
  ImportOut *o = arg;
  dvm_status st = import(I, mp);
  if (st && I->need >= 0 && o->need_size)
    snprintf(o->need, o->need_size, "%s", ir_s(I->g, ir_node(I->g, (uint32_t)I->need)->name));
  return st;
}

dvm_status onnx_import(const void *data, size_t len, const char *filename, const OnnxFixed *fixed,
                       Graph **g, dvm_tensor ***values, uint32_t *nvalues, Err *err, char *need,
                       size_t need_size) {
  *g = NULL;
  *values = NULL;
  *nvalues = 0;
  if (need_size) need[0] = 0;
  Imp I = {.err = err, .path = filename, .fixed = fixed, .need = -1};
  ImportOut o = {need, need_size};
  dvm_status st = with_model(data, len, &I, import_fn, &o);
  if (st) return st;
  *g = I.g;
  *values = I.values.v;
  *nvalues = I.values.n;
  return DVM_OK;
}

typedef struct SigOut {
  char **names;
  int *dtypes;
  int n;
} SigOut;

static dvm_status signature_fn(Imp *I, const Onnx__ModelProto *mp, void *arg) {
  SigOut *o = arg;
  const Onnx__GraphProto *gp = mp->graph;
  if (check_opset(I, mp)) return I->err->code;
  if (!gp) return onnx_fail(I, DVM_ERR_DATA, "the model has no graph (not an ONNX model?)");
  Scan s = {.gp = gp};
  dvm_status st = declare(I, gp, &s, false);
  onnx_map_free(&s.inits);
  if (st) return st;
  if (!gp->n_output) return onnx_fail(I, DVM_ERR_GRAPH, "the graph has no outputs");
  o->names = calloc(gp->n_output, sizeof *o->names);
  o->dtypes = calloc(gp->n_output, sizeof *o->dtypes);
  if (!o->names || !o->dtypes) ir_oom();
  for (size_t i = 0; i < gp->n_output; i++, o->n++) {
    const Onnx__ValueInfoProto *vi = gp->output[i];
    const Onnx__TypeProto *tp = vi ? vi->type : NULL;
    char name[256];
    onnx_base_name(vi && vi->name ? vi->name : "", name, sizeof name);
    if (!(o->names[i] = strdup(name))) ir_oom();
    o->dtypes[i] = tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->tensor_type &&
                           tp->tensor_type->has_elem_type
                       ? onnx_dtype(tp->tensor_type->elem_type)
                       : -1;
  }
  return DVM_OK;
}

dvm_status onnx_signature(const void *data, size_t len, const char *filename, Graph **decl,
                          char ***out_names, int **out_dtypes, int *nout, Err *err) {
  Imp I = {.err = err, .path = filename, .need = -1};
  SigOut o = {0};
  dvm_status st = with_model(data, len, &I, signature_fn, &o);
  if (st) {
    for (int i = 0; i < o.n; i++) free(o.names[i]);
    free(o.names);
    free(o.dtypes);
    *decl = NULL, *out_names = NULL, *out_dtypes = NULL, *nout = 0;
    return st;
  }
  for (uint32_t v = 0; v < I.values.n; v++) dvm_tensor_destroy(I.values.v[v]);
  vec_free(I.values);
  *decl = I.g, *out_names = o.names, *out_dtypes = o.dtypes, *nout = o.n;
  return DVM_OK;
}
