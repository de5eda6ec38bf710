/* runtime/runtime.h — the map of the runtime layer: tensors, .npy files, binding symbol
 * values to a graph, the reference executor, the pipeline, models, the thread pool and
 * the public API glue.
 *
 * Files: tensor.c (tensors, dtype conversion, random fill), dlpack.c (tensors to and
 * from DLPack, no copies), npy.c (.npy read/write),
 * bind.c (symbol values from shapes, constraint checks, concrete shapes), ref.c (the
 * reference executor), compile.c (the pipeline: rt_compile), model.c (dvm_model), pool.c
 * (the thread pool; its map is pool.h), api.c (context, errors, graph API, the ONNX
 * entry points over onnx/'s onnx_import), ffi.c (extern functions: the registry and
 * calls through libffi), spec.c (ONNX models specialized on input values), lazy.c and trace.c (lazy tensors: eager programs recorded and
 * fused at run time; their map is lazy.h). */
#ifndef DVM_RUNTIME_H
#define DVM_RUNTIME_H

#include "../ir/ir.h"

/* ---- tensors (tensor.c) ---------------------------------------------------------------- */

/* A dense C-ordered tensor; the public dvm_tensor. */
struct dvm_tensor {
  DType dtype;
  int rank;
  int64_t shape[DVM_MAX_RANK];
  int64_t numel;
  void *data;
  bool owned; /* data is ours to free */
  void (*release)(void *); /* when not NULL, called with release_arg as the tensor is freed */
  void *release_arg;       /* (a DLPack tensor's deleter: dvm_tensor_from_dlpack) */
};
typedef struct dvm_tensor Tensor;

/* A new zeroed tensor; fails on negative dims or byte counts that overflow. */
dvm_status rt_tensor_new(DType dt, int rank, const int64_t *shape, Tensor **out, Err *err);
/* 64-byte aligned memory (tensor data, arenas, packed weights); large blocks on
 * transparent huge pages (tensor.c). NULL if out of memory; free() releases it. */
void *rt_alloc(size_t bytes);
/* The bytes rt_alloc(bytes) makes usable (its rounding). */
size_t rt_alloc_size(size_t bytes);
/* A header over memory someone else owns (an arena, the caller's): not freed with it. */
dvm_status rt_tensor_wrap(DType dt, int rank, const int64_t *shape, void *data, Tensor **out, Err *err);
void rt_tensor_free(Tensor *t);
/* numel of a shape, or -1 on a negative dim or overflow. */
int64_t rt_numel(int rank, const int64_t *shape);

/* IEEE half and bfloat16 conversions, round to nearest even (NaN stays NaN). */
float rt_f16_to_f32(uint16_t h);
uint16_t rt_f32_to_f16(float f);
float rt_bf16_to_f32(uint16_t h);
uint16_t rt_f32_to_bf16(float f);
/* Element i as a double, any dtype: exact for f64 f32 f16 bf16 bool and the integers up
 * to 32 bits; i64 and u64 round to nearest even past 2^53 (u64 as its unsigned value:
 * 2^64 - 1 reads as the literal 18446744073709551615.0, which is the double 2^64). */
double rt_get_f(const void *data, DType dt, int64_t i);
/* Element i as an int64: integers and bool exactly, except that a u64 element is its bit
 * pattern (an element >= 2^63 reads as a negative int64; (uint64_t) of the result is the
 * value); floats truncate toward zero and saturate at the int64 range (NaN -> 0). */
int64_t rt_get_i(const void *data, DType dt, int64_t i);
/* Store a double into element i, rounding to the dtype: f64 exactly; f32 f16 bf16 round
 * to nearest even, once; integers (i8 i16 i32 i64 u8 u16 u32 u64) truncate toward zero
 * and saturate at the dtype's range, u64's being [0, 2^64 - 1] (NaN -> 0); bool is
 * v != 0 (NaN -> 1). */
void rt_set_f(void *data, DType dt, int64_t i, double v);
/* Store an int64 into element i: floats round to nearest even, once (f64 too, past 2^53);
 * i8 i16 i32 u8 u16 u32 saturate at the dtype's range; i64 exactly; u64 takes v's bit
 * pattern unchanged (the inverse of rt_get_i: -1 stores 2^64 - 1); bool is v != 0. */
void rt_set_i(void *data, DType dt, int64_t i, int64_t v);
/* Store the unsigned value v into element i: floats round to nearest even, once; u64
 * exactly; the other integers saturate (v >= 2^63 stores their maximum); bool is v != 0.
 * For converting u64 elements, whose values rt_set_i would read as negative. */
void rt_set_u(void *data, DType dt, int64_t i, uint64_t v);
/* Deterministic fill (see dvm_tensor_fill_random). */
void rt_fill_random(Tensor *t, uint64_t seed);

/* ---- .npy (npy.c) ----------------------------------------------------------------------- */

/* Read a .npy file (format versions 1.0-3.0; C order; little-endian or byte-order-free
 * descr of one of dvm's dtypes: '<f4' '<f2' '<V2' (bf16) '<f8', '|i1' '<i2' '<i4' '<i8',
 * '|u1' '<u2' '<u4' '<u8', '|b1'). Refuses Fortran order, big endian,
 * other dtypes, truncated data, trailing garbage, and shapes whose byte count overflows,
 * with a message naming the file. */
dvm_status rt_npy_read(const char *path, Tensor **out, Err *err);
/* The same from len bytes at data, named `name` in messages (the fuzz target's entry). */
dvm_status rt_npy_read_mem(const void *data, size_t len, const char *name, Tensor **out, Err *err);
/* Write a .npy file (version 1.0), atomically (temp file + rename). */
dvm_status rt_npy_write(const char *path, const Tensor *t, Err *err);

/* ---- binding (bind.c) ------------------------------------------------------------------- */

/* Concrete values for one run: every symbol's value and every value's shape. */
typedef struct Binding {
  int64_t *sym;   /* per symbol id */
  int64_t *dims;  /* concrete shape of value v is dims[off[v] .. off[v] + rank) */
  uint32_t *off;
  int64_t *numel; /* per value */
} Binding;
#define SYM_UNKNOWN INT64_MIN

/* Bind symbols from the shapes of the given tensors (given[v] for input/param nodes,
 * NULL where absent) and from preset values (preset[sym], SYM_UNKNOWN where absent),
 * check every constraint, and compute every value's concrete shape. Errors name the
 * graph line and both dims. */
dvm_status rt_bind(const Graph *g, Tensor *const *given, const int64_t *preset, Binding *out,
                   Err *err);
void rt_binding_free(Binding *b);

/* ---- the reference executor (ref.c) ----------------------------------------------------- */

/* Run graph g op by op, unfused, computing in double (int64 for integer dtypes) and
 * rounding each value to its dtype. vals[v] must hold the tensors of input and param
 * nodes; on success vals[o] holds a new tensor for each output o (if an output is also
 * an input, a copy). Other entries are left untouched. */
dvm_status rt_ref_run(const Graph *g, const Binding *b, Tensor **vals, Err *err);
/* Evaluate only nodes[0..n) (ascending ids), the same way. Every value they read from
 * outside the set must be in vals[] (literals excepted); on success vals[o] holds a new
 * tensor for each o in outs[0..no) (a value listed twice gets one tensor). This is the
 * kernel-level reference path: one call per fused kernel. */
dvm_status rt_ref_run_nodes(const Graph *g, const Binding *b, Tensor **vals, const uint32_t *nodes,
                            uint32_t n, const uint32_t *outs, uint32_t no, Err *err);

/* ---- extern functions (ffi.c) ---------------------------------------------------------- */

/* A context's registered functions (under its own lock). */
typedef struct ExtTable ExtTable;
ExtTable *rt_ext_table_new(void); /* NULL if out of memory */
void rt_ext_table_free(ExtTable *t);
/* Find every call node's function in ctx's registry and check the node against its
 * signature; sets g->ext. Errors name the graph line, the node and the function. */
dvm_status rt_extern_resolve(dvm_context *ctx, Graph *g, Err *err);

/* ---- the pipeline (compile.c) ----------------------------------------------------------- */

/* The stages `dvm dump` shows, in pipeline order; rt_stages[s] is stage s's name. */
typedef enum RtStage { RT_IR, RT_DEDUCE, RT_FUSED, RT_LOWERED, RT_BYTECODE, RT_LLVM, RT_ASM, RT_NSTAGES } RtStage;
extern const char *const rt_stages[RT_NSTAGES];

/* One run of the pipeline: what the caller asks for, then what it made (the caller owns
 * it: rt_pipeline_free, or take the pieces and clear them). */
typedef struct Pipeline {
  /* in */
  dvm_context *ctx;       /* the registry that resolves call nodes (NULL: none) */
  int dump;               /* an RtStage to dump and stop after, or -1 */
  bool unfused;           /* stop before the partition (the reference tier) */
  bool encode;            /* encode every kernel as bytecode */
  struct Jit *jit;        /* native code for every kernel from this Jit (NULL: none) ... */
  bool background;        /* ... requested from its background compiler, not compiled now */
  const void *owner;      /* ... for this owner (jit_request, jit_cancel) */
  /* out */
  struct Partition *part;
  uint32_t *last;         /* per value: the last kernel reading it (UINT32_MAX: an output) */
  struct KnKernel **low;  /* per kernel: the lowered kernel the back ends read */
  struct VmCode **vm;     /* per kernel: its bytecode, NULL where the VM declines it */
  char **vm_why;          /* dumps, per kernel: why the VM declines it */
  struct JitEntry **entry; /* per kernel: its native-code cache entry */
  int64_t vm_encodes;
  double encode_us;       /* bytecode encoding */
  double lower_us;        /* lowering and verifying the kernels */
  char *text;             /* the dump's text */
} Pipeline;

/* ---- models (model.c) ---------------------------------------------------------------- */

/* dvm_model_run_into with every input and param by position: decl[i] for the graph's i-th
 * declaration (the lazy front end's models). Status and last error as the API's. */
dvm_status rt_model_run_decl(dvm_model *m, Tensor *const *decl, Tensor *const *into);
/* The bytes a model holds beside native code: its graph, plans, arenas, packed weights,
 * kernels and bytecode (an estimate to bound caches of models by). */
size_t rt_model_bytes(dvm_model *m);
/* An ONNX graph compiled, its initializers bound and owned by the model (the graph loses
 * them): dvm_model_load_onnx's model, and each variant of a specialized one. */
dvm_status rt_model_adopt_onnx(dvm_context *ctx, dvm_graph *g, const dvm_compile_options *opt,
                               dvm_model **out);

/* ---- models specialized on input values (spec.c) ------------------------------------------
 *
 * An ONNX model in which an op needs the values of a graph input (a Reshape's shape, a
 * Resize's scales, reduction axes) is imported once per distinct set of such values: each
 * import, with those inputs' values as constants, is a variant, an ordinary model, kept
 * in a small LRU table keyed by the values (docs/onnx.md). The model seen from outside has
 * the declared inputs (decl: its Graph) and outputs of the ONNX file, and no params. */
typedef struct Spec Spec;
/* The specialized model for the file data[0..len) (taken) whose import needed input
 * `need`'s values; decl, out names and dtypes from onnx_signature (taken). */
Spec *rt_spec_new(dvm_context *ctx, const char *path, char *data, size_t len,
                  const dvm_compile_options *opt, const char *need, char **out_names,
                  int *out_dtypes, int nout);
void rt_spec_free(Spec *s);
int rt_spec_num_outputs(const Spec *s);
const char *rt_spec_output_name(const Spec *s, int i);
int rt_spec_output_dtype(const Spec *s, const char *name); /* -1 if not an output or unknown */
/* As dvm_model_shape, dvm_model_cost and the runs (into: the caller's outputs), on the
 * variant for the values among the given inputs. */
dvm_status rt_spec_shape(Spec *s, const char *name, int ninputs, const char *const *names,
                         dvm_tensor *const *inputs, int nsyms, const char *const *sym_names,
                         const int64_t *sym_values, int *rank, int64_t *shape);
dvm_status rt_spec_cost(Spec *s, int ninputs, const char *const *names, dvm_tensor *const *inputs,
                        int nsyms, const char *const *sym_names, const int64_t *sym_values,
                        dvm_cost *out);
dvm_status rt_spec_run(Spec *s, int ninputs, const char *const *names, dvm_tensor *const *inputs,
                       dvm_tensor **outputs, dvm_tensor *const *into);
void rt_spec_wait(Spec *s);
void rt_spec_stats(Spec *s, dvm_stats *out);

/* Run the pipeline on g (finished first if it is not). Errors name the graph line. */
dvm_status rt_compile(Pipeline *pl, Graph *g, Err *err);
/* Free what the pipeline made and is still held in pl. */
void rt_pipeline_free(Pipeline *pl);
/* The native tier's warm-up (jit_new): a small graph through the pipeline, compiled by j
 * on this thread. */
void rt_warm_up(struct Jit *j);

/* ---- api glue (api.c) ------------------------------------------------------------------- */

struct OnnxFixed;
/* The whole file at path in a malloc'd buffer (*data, *n); err names the file. */
dvm_status rt_read_file(const char *path, char **data, size_t *n, Err *err);
/* dvm_graph_parse_onnx with inputs whose values are given (onnx_import's `fixed`, `need`). */
dvm_status rt_graph_parse_onnx(dvm_context *ctx, const void *data, size_t len, const char *filename,
                               const struct OnnxFixed *fixed, dvm_graph **out, char *need,
                               size_t need_size);

/* The public graph: an ir Graph being built or parsed. */
struct dvm_graph {
  Graph *ir;
  dvm_context *ctx;
  uint32_t fresh; /* counter for names the builder makes up */
  Tensor **values; /* per value id < nvalues: a param's value the graph owns (an ONNX
                      initializer, onnx_import), or NULL */
  uint32_t nvalues;
};
static inline const Graph *rt_graph_ir(const dvm_graph *g) { return g->ir; }

/* The context's thread pool, made on first use with `threads` participants (0: one per
 * core); later callers share it whatever they ask for. */
struct Pool *rt_context_pool(dvm_context *ctx, int threads);
/* The context's registry of extern functions. */
ExtTable *rt_context_externs(dvm_context *ctx);
/* The context's Jit, made on first use; NULL with err set if LLVM cannot target the host. */
struct Jit *rt_context_jit(dvm_context *ctx, Err *err);
/* The context's lazy front end state (runtime/lazy.h), made on first use; NULL if out of
 * memory. */
struct Lazy *rt_context_lazy(dvm_context *ctx);
struct Lazy *rt_lazy_new(dvm_context *ctx);
void rt_lazy_free(struct Lazy *lz);
/* Copy err into this thread's last-error slot and return its code. */
dvm_status rt_fail(const Err *err);
/* Clear the last error and return DVM_OK. */
dvm_status rt_ok(void);
/* fn(arg) on a new thread with at least `stack` bytes of stack, while this thread waits
 * (for callers whose own stacks are too small: pool.h's rt_stack_room). Its status and
 * last error become this thread's. */
dvm_status rt_call_with_stack(dvm_status (*fn)(void *), void *arg, size_t stack);

#endif /* DVM_RUNTIME_H */
