/* onnx/onnx.h — the map of the ONNX front end: an ONNX model file becomes a dvm Graph plus
 * the values of its params (docs/onnx.md).
 *
 * The file is read with protobuf-c; its C reader (onnx.pb-c.h) is generated at build time
 * by protoc-c from the onnx.proto of Debian's libonnx-dev. Nodes are translated one by one
 * in the file's (topological) order, each ONNX value becoming a Val of one of three kinds:
 *
 *   V_DYN    a dvm value computed at run time (a graph input, or an op's result);
 *   V_CONST  a constant tensor known at load time (an initializer, a Constant node);
 *   V_SYM    a small integer (or bool) tensor whose elements are dim expressions over the
 *            graph's symbols — the result of a shape computation (Shape, Gather, Concat,
 *            Unsqueeze, arithmetic, ...). Constant integer tensors of up to SYM_MAX
 *            elements are V_SYM too (with constant dims). A V_SYM cast to a float dtype
 *            stays one (integer-valued floats: Range over a float sequence length).
 *
 * Ops whose operands are all V_SYM are evaluated at load time, symbolically; ops that take
 * a shape (Reshape, Expand, Slice, ConstantOfShape, Range, Split) read it from a V_SYM and
 * become dvm ops with dim attributes, so the graph stays shape-generic. A V_CONST or V_SYM
 * becomes a dvm value only where a run-time op needs it ("materialized"): a scalar as a
 * literal, a splat as `full`, anything else as a param whose value the graph holds.
 *
 * The front end depends on ir/ and the public API of include/dvm.h only: its tensors are
 * dvm_tensors made and read through dvm_tensor_* (their fields are the runtime's), its
 * errors go into the import's Err. The runtime makes onnx_import's result a dvm_graph
 * (runtime/api.c: dvm_graph_parse_onnx, dvm_graph_load_onnx).
 *
 * Files: read.c (the model, tensors, names, declarations, the driver with dead-node
 * elimination and pattern recognition, onnx_import), val.c (Vals, materializing, emitting
 * dvm nodes), ops.c (one translation per ONNX op type), compose.c (the op types that are
 * compositions of other dvm ops), window.c (convolution and its transpose, pooling, batch normalization),
 * resize.c (Resize: interpolation tables made at load time),
 * external.c (initializers in files beside the model). */
#ifndef DVM_ONNX_H
#define DVM_ONNX_H

#include "../ir/ir.h"
#include "onnx.pb-c.h"

/* Graph inputs whose values an import takes as known (specialization, docs/onnx.md). An
 * int64 input with bind[i] set keeps an element x with onnx_binds(x) as a symbol of the
 * graph, bound from the input's data when the model runs (the input's `values`), and only
 * the other elements as constants: the graph then serves every value of the same class,
 * as far as the ops that read those symbols allow (onnx_value_dim). */
typedef struct OnnxFixed {
  const char *const *names;
  dvm_tensor *const *values;
  const bool *bind; /* per input, or NULL: none binds */
  int n;
} OnnxFixed;

/* Element values that an input with bind set keeps as symbols: 2 <= x < 2^31, never 0, 1
 * or -1, which Reshape and Expand give meanings of their own, nor negative, nor "to the
 * end". A dim computed from such symbols is checked where it is read (onnx_value_dim). */
static inline bool onnx_binds(int64_t x) { return x >= 2 && x < ((int64_t)1 << 31); }

/* The front end: translate the serialized ModelProto data[0..len) (`filename` names it in
 * messages; NULL: "<onnx>"). Inputs named in `fixed` (may be NULL) stay inputs of the
 * graph, but the import uses their given values wherever an op needs constants. On
 * success *g is a finished Graph and (*values)[v], for v < *nvalues, is param v's value
 * (NULL for other values); the caller owns them all. On failure nothing is left allocated
 * and err names the file and, during translation, the ONNX node; when the failure is that
 * an op needs the values of a graph input that is not fixed (a small tensor of static
 * shape), its dvm name is copied into need[0..need_size) (else need[0] is 0). The names
 * in `fixed` are dvm names too (the ONNX names made valid: onnx_base_name). */
dvm_status onnx_import(const void *data, size_t len, const char *filename, const OnnxFixed *fixed,
                       Graph **g, dvm_tensor ***values, uint32_t *nvalues, Err *err, char *need,
                       size_t need_size);

/* What a model looks like from outside without importing its nodes: a Graph holding only
 * its inputs (as onnx_import declares them: the same names, dtypes, dims and symbols), and
 * its outputs' names (as onnx_import names them) with their declared dtypes (-1 when the
 * model does not declare one). The caller frees *decl, each name and the arrays. */
dvm_status onnx_signature(const void *data, size_t len, const char *filename, Graph **decl,
                          char ***out_names, int **out_dtypes, int *nout, Err *err);

#define ONNX_OPSET_MIN 13
#define ONNX_OPSET_MAX 17
#define SYM_MAX 64 /* integer tensors up to this many elements are kept as dims */

typedef enum VKind { V_DYN, V_CONST, V_SYM } VKind;

/* One ONNX value. */
typedef struct Val {
  uint8_t kind;  /* VKind */
  uint8_t dtype; /* DType */
  uint8_t rank;  /* V_CONST, V_SYM (V_DYN: the dvm value's) */
  int64_t shape[DVM_MAX_RANK];
  int64_t numel;
  int64_t v;        /* V_DYN: the dvm value; others: their materialized value, or -1 */
  dvm_tensor *t;    /* V_CONST: the data (ours until it becomes a param's value) */
  Dim *d;           /* V_SYM: numel dims (malloc'd) */
  const char *name; /* the ONNX name that defined it (names a param made from it) */
} Val;

/* A string -> uint32 hash map over strings that outlive it (the protobuf's). */
typedef struct SMap {
  const char **key;
  uint32_t *val;
  uint32_t cap, n;
} SMap;

/* Fused patterns the driver recognizes (read.c) and ops.c emits as one dvm op. */
typedef enum Fuse { FUSE_NONE, FUSE_GELU, FUSE_SILU } Fuse;

/* The state of one import. */
typedef struct Imp {
  Graph *g;
  Err *err;
  const char *path; /* the model file's (external data is beside it), or NULL */
  VEC(dvm_tensor *) values; /* per dvm value id: a param's value, or NULL */
  VEC(Val) vals;
  SMap names; /* ONNX value name -> index in vals */
  int64_t opset;
  const Onnx__NodeProto *node; /* being translated; NULL while declaring */
  uint32_t nodeno;             /* its 1-based number: the line of the dvm nodes it makes */
  Fuse fuse;                   /* this node is the root of a recognized pattern */
  const char *fuse_x;          /* the pattern's input */
  uint32_t fresh;              /* counter for made-up names */
  const OnnxFixed *fixed;      /* inputs whose values are given, or NULL */
  int64_t need;                /* the input node whose values an op needed (onnx_need), or -1 */
  VEC(uint32_t) vsyms;         /* symbols bound from inputs' values, their input nodes and */
  VEC(uint32_t) vnodes;        /* element numbers: vsyms.v[i] is element velems.v[i] of */
  VEC(uint32_t) velems;        /* input vnodes.v[i] */
} Imp;

/* read.c */
bool onnx_map_get(const SMap *m, const char *key, uint32_t *out);
void onnx_map_put(SMap *m, const char *key, uint32_t val);
void onnx_map_free(SMap *m);
/* Fail with err naming the node being translated (number, name, op type). */
dvm_status onnx_fail(Imp *I, dvm_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The dvm dtype of an ONNX TensorProto.DataType, or -1. */
int onnx_dtype(int64_t t);
const char *onnx_dtype_name(int64_t t);
/* Decode a TensorProto (initializer, Constant's value) into a new Val; its index in *out. */
dvm_status onnx_tensor(Imp *I, const Onnx__TensorProto *tp, const char *what, uint32_t *out);

/* external.c */
/* The data of tp (numel elements of dt in the given shape), which is in an external file
 * beside I->path, as a new tensor in *out; an error naming `what` otherwise. */
dvm_status onnx_external(Imp *I, const Onnx__TensorProto *tp, const char *what, DType dt, int rank,
                         const int64_t *shape, int64_t numel, dvm_tensor **out);

/* val.c */
/* Append a Val and return its index (the Val's storage may move: re-fetch pointers). */
uint32_t onnx_val_new(Imp *I, const Val *x);
static inline Val *onnx_val(Imp *I, uint32_t i) { return &I->vals.v[i]; }
/* A V_DYN Val for dvm value v. */
uint32_t onnx_val_dyn(Imp *I, uint32_t v);
/* A V_SYM Val of n dims and the given shape (rank <= 1 typical); copies d. */
uint32_t onnx_val_sym(Imp *I, DType dt, int rank, const int64_t *shape, const Dim *d);
/* A V_CONST Val holding tensor t (it takes t), named after ONNX value `name`. */
uint32_t onnx_val_const(Imp *I, dvm_tensor *t, const char *name);
/* A new zeroed tensor (dvm_tensor_create); NULL with err set to "WHAT: " (what NULL: no
 * prefix) and the reason. */
dvm_tensor *onnx_tensor_new(Imp *I, DType dt, int rank, const int64_t *shape, const char *what);
/* The dvm value of Val i, materializing a constant or shape value if needed. */
dvm_status onnx_use(Imp *I, uint32_t i, uint32_t *v);
/* The concrete ints of a V_SYM whose dims are all constant; false otherwise. */
bool onnx_sym_ints(Imp *I, uint32_t i, int64_t *out, int max, int *n);
/* The numbers of a V_CONST, or of a V_SYM whose dims are all constant, of at most max
 * elements: their count, or -1. */
int onnx_numbers(Imp *I, uint32_t i, double *out, int max);
/* The single number of a one-element V_CONST or constant V_SYM. */
bool onnx_scalar(Imp *I, uint32_t i, double *out);
/* Shape of Val i as dims (V_DYN: the value's inferred shape, substituted). */
int onnx_dims(Imp *I, uint32_t i, Dim *out);
DType onnx_val_dtype(Imp *I, uint32_t i);
/* full(shape, value x, dtype dt), named after ONNX value `name` (NULL: made up); -1 on error. */
int64_t onnx_full(Imp *I, const Dim *shape, int rank, double x, DType dt, const char *name);
/* Emitting dvm nodes: fill a draft's attributes, then add it. */
/* x truncated to int64, saturating (NaN: 0). */
int64_t onnx_to_i64(double x);
void onnx_at_int(NodeDraft *d, AttrKey k, int64_t x);
void onnx_at_float(NodeDraft *d, AttrKey k, double x, bool isint);
void onnx_at_dtype(NodeDraft *d, AttrKey k, DType dt);
void onnx_at_dim(NodeDraft *d, AttrKey k, Dim x);
void onnx_at_ints(Imp *I, NodeDraft *d, AttrKey k, const int64_t *x, uint32_t n);
void onnx_at_dims(Imp *I, NodeDraft *d, AttrKey k, const Dim *x, uint32_t n);
/* Add the node named after ONNX value `oname` (NULL: a made-up name); -1 with err set. */
int64_t onnx_add(Imp *I, NodeDraft *d, const char *oname);
/* A literal scalar of dtype dt. */
int64_t onnx_literal(Imp *I, double x, DType dt);
/* ONNX name s made a valid dvm name: other characters become '_' ('_' first before a digit). */
void onnx_base_name(const char *s, char *buf, size_t n);
/* A valid, unused dvm name for ONNX name s (NULL: made up) in buf. */
void onnx_name(Imp *I, const char *s, char *buf, size_t n);
/* Exact quotient of dims a / b (b a monomial), DIM_NONE if it does not divide. */
Dim onnx_dim_div(Graph *g, Dim a, Dim b);

/* ops.c */
/* Translate the node I->node. */
dvm_status onnx_node(Imp *I);
/* The node's operands, outputs and attributes, shared with compose.c. */
/* Input i as a Val index: -1 if absent (optional), -2 (error set) on error. */
int64_t onnx_arg(Imp *I, size_t i, bool required);
/* Val k is needed as constants and is not: if it is a graph input that fixing could make
 * constant (static shape, at most SYM_MAX elements), remember it for onnx_import's caller.
 * Called where an op refuses a run-time operand, before it fails. */
void onnx_need(Imp *I, int64_t k);
/* The index in I->vsyms of the symbol bound from an input's values whose class holds sym,
 * or -1. */
int64_t onnx_value_sym(Imp *I, uint32_t sym);
/* The same for the first such symbol of dim d (substituted), or -1. */
int64_t onnx_value_sym_in(Imp *I, Dim d);
/* Whether dim d, read by an op where constants would have meant something of their own,
 * must be a constant instead: d is made of symbols bound from inputs' values
 * (OnnxFixed.bind) and of constants only (with a symbol from shapes, it is a dim as any
 * other), and it is not certain to be at least `min` for every value of its class (each
 * symbol is at least 2: a sum of products of them with positive coefficients, and a
 * constant). If so, the input of one of its symbols is remembered as needed as constants
 * (onnx_import's `need`) and the result is true; the op then fails. */
bool onnx_value_dim(Imp *I, Dim d, int64_t min);
/* The dvm value of input i (required, materialized); -1 with the error set. */
int64_t onnx_in(Imp *I, size_t i);
/* The dvm value of optional input i (materialized): -1 if absent, -2 (error set) on error. */
int64_t onnx_in_opt(Imp *I, size_t i);
/* The name of output k, NULL when absent. */
const char *onnx_out(Imp *I, size_t k);
/* Is dim d (substituted) a constant (false for DIM_NONE, an overflowed expression)? */
bool onnx_dim_const(Imp *I, Dim d, int64_t *c);
/* Define output k as Val x; as the dvm value v (v < 0: the error already set). */
dvm_status onnx_def(Imp *I, size_t k, uint32_t x);
dvm_status onnx_def_dyn(Imp *I, size_t k, int64_t v);
const Onnx__AttributeProto *onnx_attr(Imp *I, const char *name);
int64_t onnx_attr_i(Imp *I, const char *name, int64_t dflt);
double onnx_attr_f(Imp *I, const char *name, double dflt);
/* A string attribute among NULL-terminated `choices`: its index, dflt if absent, -1 on error. */
int onnx_attr_choice(Imp *I, const char *name, const char *const *choices, int dflt);
/* An int-list attribute: its length, -1 if absent, -2 (error set) if over max. */
int onnx_attr_ints(Imp *I, const char *name, int64_t *out, int max);
/* Reduction axes from input i (opset 13+) or the attribute: as onnx_attr_ints. */
int onnx_axes(Imp *I, size_t i, int64_t *out);
/* One dvm node on dvm values, named after ONNX value `name` (NULL: made up); -1 on error. */
int64_t onnx_unary(Imp *I, Op op, uint32_t x, const char *name);
int64_t onnx_binary(Imp *I, Op op, uint32_t a, uint32_t b, const char *name);

/* The builder the composed ops are written in: each call adds one node and returns the
 * dvm value, or -1 (error set), and propagates a negative operand, so that a formula
 * reads as one expression and is checked once at its end. */
#define DT(v) ((DType)ir_node(I->g, (uint32_t)(v))->dtype)
static inline int64_t un(Imp *I, Op op, int64_t x) { return x < 0 ? -1 : onnx_unary(I, op, (uint32_t)x, NULL); }
static inline int64_t bin(Imp *I, Op op, int64_t a, int64_t b) {
  return a < 0 || b < 0 ? -1 : onnx_binary(I, op, (uint32_t)a, (uint32_t)b, NULL);
}
/* Literal c of the dtype of value `like`. */
static inline int64_t lit(Imp *I, double c, int64_t like) { return like < 0 ? -1 : onnx_literal(I, c, DT(like)); }
/* Binary op with a literal right operand of a's dtype. */
static inline int64_t binc(Imp *I, Op op, int64_t a, double c) { return bin(I, op, a, lit(I, c, a)); }
static inline int64_t sel(Imp *I, int64_t c, int64_t a, int64_t b) {
  if (c < 0 || a < 0 || b < 0) return -1;
  NodeDraft d = {.op = OP_SELECT, .nin = 3, .in = {(uint32_t)c, (uint32_t)a, (uint32_t)b}};
  return onnx_add(I, &d, NULL);
}
/* Reduction over axes[0..n) (n < 0: all axes). */
static inline int64_t reduce(Imp *I, Op op, int64_t x, const int64_t *axes, int n, bool keep) {
  if (x < 0) return -1;
  NodeDraft d = {.op = op, .nin = 1, .in = {(uint32_t)x}};
  if (n >= 0) onnx_at_ints(I, &d, AK_AXES, axes, (uint32_t)n);
  onnx_at_int(&d, AK_KEEPDIMS, keep);
  return onnx_add(I, &d, NULL);
}

/* compose.c */
/* Translate I->node if its op type is one compose.c makes of other dvm ops (*st: the
 * outcome); false for other op types. */
bool onnx_composed(Imp *I, const char *t, dvm_status *st);
/* Building blocks shared with window.c; each returns -1 (error set) and propagates a
 * negative operand. The dims of dvm value v, substituted (its rank): */
int onnx_vdims(Imp *I, int64_t v, Dim *d);
int64_t onnx_reshape(Imp *I, int64_t x, const Dim *s, int n);
/* x cast to dt (x itself when it is of dt already). */
int64_t onnx_cast(Imp *I, int64_t x, DType dt);
/* 0, 1, ..., n-1 (int64) along axis `axis` of a rank-`rank` value, 1s elsewhere. */
int64_t onnx_iota(Imp *I, Dim n, int axis, int rank);
/* Dim n as an int64 scalar value (a literal when constant). */
int64_t onnx_dim_value(Imp *I, Dim n);
/* x with b and e elements before and after it along `axis`, of value c, or (val >= 0) of
 * the scalar dvm value val: a concat of blocks (x itself when b and e are 0). */
int64_t onnx_pad_axis(Imp *I, int64_t x, int axis, int64_t b, int64_t e, double c, int64_t val);
/* gather(x, idx, axis), named after ONNX value `name` (NULL: made up). */
int64_t onnx_gather(Imp *I, int64_t x, int64_t idx, int axis, const char *name);

/* window.c */
/* The same for Conv, MaxPool, AveragePool and BatchNormalization. */
bool onnx_windowed(Imp *I, const char *t, dvm_status *st);
/* Conv of dvm values x and wt (of one dtype) plus bias b (-1: none) by the node's
 * attributes (Conv's, ConvInteger's, QLinearConv's): the output (N, M, out...), or -1
 * with the error set. */
int64_t onnx_conv(Imp *I, int64_t x, int64_t wt, int64_t b);

/* quant.c */
/* The same for QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, MatMulInteger,
 * QLinearMatMul, ConvInteger and QLinearConv. */
bool onnx_quantized(Imp *I, const char *t, dvm_status *st);

/* signal.c */
/* The same for CumSum and the window functions. */
bool onnx_signal(Imp *I, const char *t, dvm_status *st);

/* einsum.c */
bool onnx_einsum(Imp *I, const char *t, dvm_status *st);

/* resize.c */
dvm_status onnx_resize(Imp *I);

#endif /* DVM_ONNX_H */
