/* dvm.h — the public C API of dvm, a real-time operator compiler for dynamic-shape
 * inference on CPU. This is the only header a user includes.
 *
 * The life of a model:
 *
 *   dvm_context *ctx;   dvm_context_create(&ctx);
 *   dvm_graph *g;       dvm_graph_load(ctx, "mlp.dvm", &g);        // or the builder below
 *   dvm_model *m;       dvm_model_compile(ctx, g, NULL, &m);        // shape-polymorphic
 *   dvm_model_set_param(m, "w1", w1);                                // once per model
 *   dvm_model_run(m, 1, names, inputs, outputs);                    // any symbol values
 *
 * Every function that can fail returns a dvm_status; on failure the message (with the
 * graph file and line, the op and the dims involved) is readable with dvm_last_error()
 * from the same thread. The library never exits or aborts on bad input.
 *
 * Threads: a context may be shared; a graph is built by one thread at a time; a compiled
 * model may be run from many threads at once (each run uses its own workspace). */
#ifndef DVM_H
#define DVM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DVM_VERSION_MAJOR 0
#define DVM_VERSION_MINOR 2
#define DVM_MAX_RANK 8 /* the largest tensor rank dvm handles */

/* Result of every fallible call. */
typedef enum dvm_status {
  DVM_OK = 0,
  DVM_ERR_SYNTAX,      /* malformed graph text or attribute */
  DVM_ERR_GRAPH,       /* undefined/redefined value, unknown op, wrong arity, bad attribute */
  DVM_ERR_DTYPE,       /* operand dtypes that an op does not accept, .npy dtype mismatch */
  DVM_ERR_SHAPE,       /* contradictory shapes, constraint violated at bind time */
  DVM_ERR_OVERFLOW,    /* a dim or element count that does not fit in int64 */
  DVM_ERR_DATA,        /* bad tensor data or file contents (truncated .npy, ...) */
  DVM_ERR_IO,          /* a file could not be opened, read or written */
  DVM_ERR_UNSUPPORTED, /* valid input that this build cannot run yet */
  DVM_ERR_USAGE,       /* misuse of the API (null argument, unknown name, ...) */
  DVM_ERR_NOMEM,       /* allocation failed */
  DVM_ERR_RUNTIME      /* failure while running a model (index out of range, ...) */
} dvm_status;

/* Element types. The numbering is part of the ABI. */
typedef enum dvm_dtype {
  DVM_F32 = 0,
  DVM_F16,
  DVM_BF16,
  DVM_I32,
  DVM_I64,
  DVM_BOOL, /* one byte, 0 or 1 */
  DVM_F64,
  DVM_I8,
  DVM_I16,
  DVM_U8,
  DVM_U16,
  DVM_U32,
  DVM_U64,
  DVM_DTYPE_COUNT
} dvm_dtype;

/* Execution tiers (docs/format.md `--tier`). The environment variable DVM_JIT=off disables
 * native code: auto then stays on the reference path and llvm fails saying so (for
 * debugging numerical differences, or hosts that forbid executable memory). */
typedef enum dvm_tier {
  DVM_TIER_AUTO = 0, /* at once on the fused reference path, native code when ready */
  DVM_TIER_VM,       /* tile bytecode only */
  DVM_TIER_LLVM,     /* native code, compiled before the first run */
  DVM_TIER_REF       /* the reference executor: unfused, op by op, in double */
} dvm_tier;

typedef struct dvm_context dvm_context;
typedef struct dvm_graph dvm_graph;
typedef struct dvm_model dvm_model;
typedef struct dvm_tensor dvm_tensor;

/* ---- errors ---------------------------------------------------------------------- */

/* The message of the last failed call on this thread ("" if none). Valid until the
 * next dvm call on this thread. */
const char *dvm_last_error(void);
/* A short name for a status ("DVM_ERR_SHAPE"). */
const char *dvm_status_name(dvm_status s);

/* ---- context --------------------------------------------------------------------- */

dvm_status dvm_context_create(dvm_context **out);
/* Where the context keeps native code between processes (one object file per kernel, each
 * checked before it is loaded: docs/design.md "Caches"), or "off". Without a call, the
 * directory is $DVM_CACHE_DIR (DVM_CACHE_DIR=off: no cache), else $XDG_CACHE_HOME/dvm,
 * else ~/.cache/dvm. A directory that another user may write is refused with a warning.
 * Call it before the context's first model compile that makes native code (DVM_ERR_USAGE
 * after). */
dvm_status dvm_context_set_cache_dir(dvm_context *ctx, const char *dir);
/* The bytes of native code the context keeps in memory beyond what its models hold (code
 * of kernels no live model uses, for models to come), least recently released evicted
 * first; 0: no limit. Bytes are the kernels' object sizes: mapped, each kernel's code
 * takes several times more (its sections are page-granular). Without a call,
 * DVM_CODE_CACHE_MB (mebibytes), else no limit. Code a live model uses is never released.
 * Call it before the context's first model compile that makes native code (DVM_ERR_USAGE
 * after). */
dvm_status dvm_context_set_code_limit(dvm_context *ctx, size_t bytes);
/* The object cache's directory for setting `dir` (NULL: the default, DVM_CACHE_DIR first,
 * as for contexts) and what it holds: kernel files of every build and target. */
typedef struct dvm_cache_info {
  char dir[1024]; /* "" when the cache is off */
  int64_t files, bytes;
} dvm_cache_info;
dvm_status dvm_cache_info_get(const char *dir, dvm_cache_info *out);
/* Remove every kernel file from that directory; *removed (if not NULL) counts them. */
dvm_status dvm_cache_clear(const char *dir, int64_t *removed);
/* Destroy a context after every model compiled in it (they share its JIT and pool). It
 * waits for the background compile in flight, if any. A process may also exit with its
 * contexts alive: the background compiles stop at exit (after the one in flight). */
void dvm_context_destroy(dvm_context *ctx);

/* ---- dtypes ---------------------------------------------------------------------- */

/* The text-format name of a dtype ("f32"), or NULL. */
const char *dvm_dtype_name(dvm_dtype dt);
/* Bytes per element. */
size_t dvm_dtype_size(dvm_dtype dt);

/* ---- tensors --------------------------------------------------------------------- */

/* A dense, C-ordered tensor. Created tensors own zeroed storage; wrapped ones borrow
 * the caller's memory, which must outlive the tensor. */
dvm_status dvm_tensor_create(dvm_dtype dt, int rank, const int64_t *shape, dvm_tensor **out);
dvm_status dvm_tensor_wrap(dvm_dtype dt, int rank, const int64_t *shape, void *data,
                           dvm_tensor **out);
void dvm_tensor_destroy(dvm_tensor *t);
dvm_dtype dvm_tensor_dtype(const dvm_tensor *t);
int dvm_tensor_rank(const dvm_tensor *t);
const int64_t *dvm_tensor_shape(const dvm_tensor *t);
int64_t dvm_tensor_numel(const dvm_tensor *t);
void *dvm_tensor_data(dvm_tensor *t);
/* Element i (C order) of any dtype, widened to double. */
double dvm_tensor_get_f64(const dvm_tensor *t, int64_t i);
/* Element i of any dtype as an int64: integers exactly (a u64 as the int64 of its bits),
 * floats truncated toward zero and saturated (NaN reads as 0). */
int64_t dvm_tensor_get_i64(const dvm_tensor *t, int64_t i);
/* Store v into element i: exact for i64 (and for u64, v's bits), the narrower integers
 * saturate at their range, bool is v != 0, floats round to nearest even. */
void dvm_tensor_set_i64(dvm_tensor *t, int64_t i, int64_t v);
/* Read/write NumPy .npy files (C order, little endian; bf16 is stored as '<V2'). */
dvm_status dvm_tensor_load_npy(const char *path, dvm_tensor **out);
dvm_status dvm_tensor_save_npy(const char *path, const dvm_tensor *t);
/* Fill with deterministic pseudo-random values: floats uniform in [-1, 1), integers
 * uniform in [-8, 8), bools 0/1. The same seed gives the same values on every machine. */
void dvm_tensor_fill_random(dvm_tensor *t, uint64_t seed);

/* ---- DLPack (include <dlpack/dlpack.h> to call these) ----------------------------------- */

struct DLManagedTensor;
/* A tensor over a DLPack tensor's memory, without a copy. src must be a CPU tensor of one
 * lane of a dtype dvm has (float32, float16, bfloat16, int32, int64, bool), C-contiguous
 * (strides NULL, or the row-major ones; any stride along a dim of size 1), of rank at
 * most DVM_MAX_RANK; data + byte_offset is where its elements start. On success the dvm
 * tensor owns src: destroying it calls src->deleter(src) (when not NULL), once, and src
 * must not be used otherwise. On failure (DVM_ERR_USAGE naming what does not fit) src is
 * untouched and still the caller's. */
dvm_status dvm_tensor_from_dlpack(struct DLManagedTensor *src, dvm_tensor **out);
/* A DLPack tensor over t's memory, without a copy (CPU, C-contiguous, with row-major
 * strides). t moves into it: the caller no longer destroys t, and the consumer's call of
 * the result's deleter destroys t (a wrapped tensor's memory stays the wrapper's). */
dvm_status dvm_tensor_to_dlpack(dvm_tensor *t, struct DLManagedTensor **out);

/* ---- graphs: parse ------------------------------------------------------------------ */

/* Parse the text format of docs/format.md. `filename` names the source in error messages. */
dvm_status dvm_graph_parse(dvm_context *ctx, const char *text, size_t len,
                           const char *filename, dvm_graph **out);
dvm_status dvm_graph_load(dvm_context *ctx, const char *path, dvm_graph **out);
void dvm_graph_destroy(dvm_graph *g);
/* Print the graph in the text format; returns a malloc'd string the caller frees. */
char *dvm_graph_print(const dvm_graph *g);
/* A stage of `dvm dump` ("ir", "deduce", ...) as a malloc'd string; NULL with an error
 * (DVM_ERR_USAGE for an unknown stage: dvm_dump_stage lists them). */
char *dvm_graph_dump(const dvm_graph *g, const char *stage);
/* The name of dump stage i (0, 1, ... in pipeline order), NULL past the last. */
const char *dvm_dump_stage(int i);

/* ---- graphs: build ------------------------------------------------------------------ */
/* Values are named by int32 ids; a negative id is a failure (see dvm_last_error). Dims
 * are given as text expressions ("N", "1024", "N*S"), attributes as docs/format.md text
 * ("axis=-1, eps=1e-5"), so a built graph and a parsed one are the same thing. */

dvm_status dvm_graph_create(dvm_context *ctx, const char *name, dvm_graph **out);
int32_t dvm_graph_input(dvm_graph *g, const char *name, dvm_dtype dt, int rank,
                        const char *const *dims);
/* An integer input of constant shape whose nvalues elements (its element count, at most
 * 64) are the dims values[i] at run time: its data binds their symbols (docs/format.md,
 * `values=[...]`). */
int32_t dvm_graph_input_values(dvm_graph *g, const char *name, dvm_dtype dt, int rank,
                               const char *const *dims, int nvalues, const char *const *values);
int32_t dvm_graph_param(dvm_graph *g, const char *name, dvm_dtype dt, int rank,
                        const char *const *dims);
/* A scalar literal operand of dtype dt. */
int32_t dvm_graph_literal(dvm_graph *g, double value, dvm_dtype dt);
/* Add `name = op(operands..., attrs)`. name may be NULL (a fresh name is made). */
int32_t dvm_graph_op(dvm_graph *g, const char *name, const char *op, int noperands,
                     const int32_t *operands, const char *attrs);
dvm_status dvm_graph_output(dvm_graph *g, int32_t value);
/* Look a value up by name; -1 if absent. */
int32_t dvm_graph_find(const dvm_graph *g, const char *name);

/* ---- graphs: ONNX ------------------------------------------------------------------- */
/* An ONNX model (opsets 13-17, docs/onnx.md) becomes a graph: the model's inputs are its
 * inputs (dims named by dim_param become symbols, names outside [A-Za-z_][A-Za-z0-9_.]*
 * have other characters replaced by '_'), its initializers are params whose values the
 * graph holds, and shape computations (Shape, Gather, Concat, ...) are evaluated at load
 * time into symbolic dims. Errors name the node (its 1-based number, which messages use
 * as the graph line, and its name) and its op type. */

dvm_status dvm_graph_load_onnx(dvm_context *ctx, const char *path, dvm_graph **out);
/* The same from a serialized ModelProto in memory; `filename` names it in messages and is
 * where external data is resolved (beside it: docs/onnx.md; NULL: none allowed). */
dvm_status dvm_graph_parse_onnx(dvm_context *ctx, const void *data, size_t len,
                                const char *filename, dvm_graph **out);
/* The value graph g holds for param `name` (an ONNX initializer), or NULL. The graph owns
 * it: it lives until dvm_graph_destroy. */
dvm_tensor *dvm_graph_param_value(const dvm_graph *g, const char *name);
/* Bind every param of m for which g holds a value (dvm_model_set_param). The model then
 * references g's tensors: destroy g after m. */
dvm_status dvm_model_set_graph_params(dvm_model *m, const dvm_graph *g);

/* ---- extern functions ------------------------------------------------------------- */
/* A graph node `y = call(x, ..., fn=NAME, shape=[...], dtype=DT, dims=[...])` calls a C
 * function the host registered under NAME (docs/extern.md). The signature is its C
 * prototype, result first:
 *
 *     "void <- f32* x, f32* y, f32* out, i64 n"      "f64 <- f32*, i64"
 *
 *   result:      void, or a scalar i32 i64 f32 f64 (then it is the output's one element:
 *                f32/f64 into an f32 output, i32 into i32, i64 into i64)
 *   parameters:  T* (T any dtype: f32 f16 bf16 f64 i8 ... u64 bool) or void*: a tensor's
 *                data, C order; i32 i64 f32 f64: a value. Names after a type are comments.
 *
 * The call gives one argument per parameter, in this order: its operands (a pointer
 * parameter gets the operand's data, a scalar parameter its one element by value,
 * converted as cast does), then the output's data if the result is void, then the values
 * of its dims=[...] attribute (dim expressions such as N*S, evaluated at run time; i32 or
 * i64 parameters). The function reads its operands and writes the whole output; it must
 * not keep the pointers or write through operand pointers. Counts, dtypes and shapes are
 * checked when a model is compiled: an unregistered fn or a mismatch is an error naming
 * the graph line and the function.
 *
 * A name is registered once per context (DVM_ERR_USAGE the second time: compiled models
 * and native code keep the function); it lives until the context is destroyed. A bad
 * signature is DVM_ERR_SYNTAX. The native tier calls the function directly, the bytecode
 * and reference tiers through libffi (the call prepared here, once). Runs on several
 * threads, and independent kernels of one run, may call a function concurrently: it must
 * be thread-safe. */
typedef void (*dvm_extern_fn)(void); /* any function, cast: (dvm_extern_fn)my_fn */
dvm_status dvm_register_extern(dvm_context *ctx, const char *name, dvm_extern_fn fn,
                               const char *signature);

/* ---- models ------------------------------------------------------------------------- */

typedef struct dvm_compile_options {
  dvm_tier tier; /* default DVM_TIER_AUTO */
  int threads;   /* worker threads; 0 = one per core */
} dvm_compile_options;

/* Compile a graph into a shape-polymorphic model. The graph may be destroyed after. */
dvm_status dvm_model_compile(dvm_context *ctx, const dvm_graph *g,
                             const dvm_compile_options *opt, dvm_model **out);
/* Load an ONNX model, compile it and bind its initializers: the model owns them (no graph
 * to keep). The usual entry point for serving an exported model. */
dvm_status dvm_model_load_onnx(dvm_context *ctx, const char *path, const dvm_compile_options *opt,
                               dvm_model **out);
void dvm_model_destroy(dvm_model *m);

/* Inputs (declared `input`) and params (declared `param`), in declaration order. */
int dvm_model_num_inputs(const dvm_model *m);
int dvm_model_num_params(const dvm_model *m);
int dvm_model_num_outputs(const dvm_model *m);
const char *dvm_model_input_name(const dvm_model *m, int i);
const char *dvm_model_param_name(const dvm_model *m, int i);
const char *dvm_model_output_name(const dvm_model *m, int i);
/* The free symbols of the model: those whose values come from input shapes or `-s`
 * (symbols deduction bound to others or to constants are not listed). */
int dvm_model_num_symbols(const dvm_model *m);
const char *dvm_model_symbol_name(const dvm_model *m, int i);
/* Dtype of a named input, param or output; -1 (as int) if there is no such name. */
int dvm_model_value_dtype(const dvm_model *m, const char *name);

/* The concrete shape a named value (input, param, output or any named value) has when
 * the model runs with the given inputs (by name, as for dvm_model_run; may be a subset),
 * the params set so far, and symbol values by name (e.g. {"N"} = {7}). Fails naming the
 * symbol if one needed is not determined, and with the graph line if the shapes and
 * values contradict each other or a recorded constraint. */
dvm_status dvm_model_shape(const dvm_model *m, const char *name, int ninputs,
                           const char *const *input_names, dvm_tensor *const *inputs,
                           int nsyms, const char *const *sym_names, const int64_t *sym_values,
                           int *rank, int64_t *shape);
/* The elements input `name` must hold under the binding dvm_model_shape works out (for an
 * input declared with `values`, whose data binds symbols: docs/format.md): *n of them, in
 * C order, into values[0..max); *n = 0 for any other input. */
dvm_status dvm_model_values(const dvm_model *m, const char *name, int ninputs,
                            const char *const *input_names, dvm_tensor *const *inputs, int nsyms,
                            const char *const *sym_names, const int64_t *sym_values, int64_t *values,
                            int max, int *n);

/* Bind a param for all later runs. The model keeps a reference: the tensor must
 * outlive the model or be replaced, and its values must not change while it is bound
 * (set it again after changing them): a weight that matmuls read is packed here, once,
 * into the layout the kernels read. Not while a run of the model is in flight on another
 * thread (the run reads the binding it replaces): bind params before the runs, or
 * between them. */
dvm_status dvm_model_set_param(dvm_model *m, const char *name, dvm_tensor *t);

/* Run: inputs by name (every declared input once); outputs[i] receives a new tensor
 * for output i (dvm_model_num_outputs of them) that the caller destroys. Symbols are
 * bound from the input and param shapes; every recorded constraint is checked. */
dvm_status dvm_model_run(dvm_model *m, int ninputs, const char *const *names,
                         dvm_tensor *const *inputs, dvm_tensor **outputs);

/* As dvm_model_run, but into the caller's tensors: outputs[i] must have output i's dtype
 * and shape for this binding (see dvm_model_shape), and must not share memory with an
 * input or param (native kernels write outputs in place while reading inputs). For
 * timing loops and servers that reuse buffers. */
dvm_status dvm_model_run_into(dvm_model *m, int ninputs, const char *const *names,
                              dvm_tensor *const *inputs, dvm_tensor *const *outputs);

/* What one run costs at a binding, for reporting throughput. */
typedef struct dvm_cost {
  double bytes; /* compulsory traffic: every input, param and output once */
  double flops; /* 2·M·N·K summed over matmuls (other ops are not counted) */
} dvm_cost;
/* The cost of a run with these inputs (may be a subset), the params set so far and
 * symbol values by name, bound as for dvm_model_shape. */
dvm_status dvm_model_cost(const dvm_model *m, int ninputs, const char *const *names,
                          dvm_tensor *const *inputs, int nsyms, const char *const *sym_names,
                          const int64_t *sym_values, dvm_cost *out);

/* Wait until the background compiles of this model's kernels (auto tier) are done, so
 * that later runs are in their steady state. Runs never wait for them by themselves. */
void dvm_model_wait(dvm_model *m);

/* Counters since the model was compiled (docs/format.md `--stats`). */
typedef struct dvm_stats {
  int64_t kernels;      /* kernels in the executed partition (ops, for the ref tier) */
  int64_t native_kernels; /* of which run native code now */
  int64_t cache_hits;   /* the context's kernel cache */
  int64_t cache_misses;
  int64_t vm_encodes;   /* bytecode encodes */
  int64_t llvm_compiles;
  double encode_us;     /* total bytecode encode time */
  double lower_us;      /* time to lower the kernels for the back ends (before encoding) */
  double compile_ms;    /* total native compile time */
  double run_us;        /* time of the last run */
  int64_t runs;
  int64_t plan_hits;    /* runs whose input binding had a plan (fused tiers) */
  int64_t plan_misses;  /* runs that made one (binding, memory plan) */
  int64_t disk_hits;    /* the context's kernels loaded from the cache directory, */
  int64_t disk_misses;  /* not found there, */
  int64_t disk_writes;  /* written there, */
  int64_t disk_rejects; /* and files there that failed a check (removed, never loaded) */
  int64_t code_bytes;   /* the context's native code in memory (objects' bytes) */
  int64_t code_evictions; /* kernels whose code the context released (its limit) */
} dvm_stats;
void dvm_model_stats(const dvm_model *m, dvm_stats *out);

/* ---- lazy tensors: eager programs fused at run time (docs/lazy.md) ------------------ */
/* A dvm_lazy is a value of an eager program: a wrapped tensor, a scalar, or the result of
 * an op applied to other lazy values. Applying an op records it in the calling thread's
 * trace and returns at once with the result's dtype and shape (inference runs as the op
 * is recorded: an error names the op and the dims, at that call). Reading a result's data
 * flushes the trace: the pending ops the host still holds values of become one graph,
 * which is fused and run by the same pipeline as a compiled model; values the host no
 * longer holds are computed only where a held one needs them. Flushed traces are cached
 * symbolically in their inputs' dims (a dim of 1 stays 1), so a loop that records the
 * same ops at new sizes compiles once. */
typedef struct dvm_lazy dvm_lazy;

/* A lazy value over t's data, without a copy. t stays the caller's: its data is read by
 * the flushes of the ops that use it, so it must stay alive and unchanged until they have
 * run (dvm_lazy_sync on each thread that used it, or reading the values that depend on
 * it); a flush after a change reads the new values. */
dvm_status dvm_lazy_wrap(dvm_context *ctx, dvm_tensor *t, dvm_lazy **out);
/* The same for a tensor whose values do not change while any lazy value wraps it (a
 * model's weights): it is bound to the flushed graphs as a param, so forms derived from
 * it (a matmul weight's packed copy) are made once and kept across flushes. Each call
 * wraps anew: a tensor wrapped again (changed values, or another tensor at the same
 * address) is bound and packed again at its next flush. */
dvm_status dvm_lazy_wrap_const(dvm_context *ctx, dvm_tensor *t, dvm_lazy **out);
/* As dvm_lazy_wrap, but the lazy value takes t over: t is destroyed (its release, such as a
 * DLPack deleter, called) when the last reference to the value goes, which may be a
 * flush on another thread. For a host whose tensors cannot outlive its own handles (a
 * garbage-collected language): no flush needs to happen before the host lets go. On
 * failure t is still the caller's. */
dvm_status dvm_lazy_adopt(dvm_context *ctx, dvm_tensor *t, dvm_lazy **out);
/* A scalar constant of dtype dt, compiled into the kernels that use it (a value that
 * changes from one iteration to the next belongs in a wrapped one-element tensor). */
dvm_status dvm_lazy_scalar(dvm_context *ctx, double value, dvm_dtype dt, dvm_lazy **out);
/* Apply `op` (any op of docs/format.md but input, param and literal) to the operands,
 * with attributes as the graph builder takes them ("axis=-1, eps=1e-5"; dims are
 * integers). A `call` op runs its function before returning (extern calls are flush
 * points). An operand recorded by another thread is first computed there. */
dvm_status dvm_lazy_op(dvm_context *ctx, const char *op, int noperands,
                       dvm_lazy *const *operands, const char *attrs, dvm_lazy **out);
/* Apply graph g to lazy values: args are g's inputs, then its params, each in declaration
 * order (dvm_model_input_name, dvm_model_param_name); outs[i] receives g's output i (a value the caller destroys; an
 * output that is a declaration is that arg, with one more reference). Symbols take
 * their values from the args' shapes, every constraint of g is checked, and dims in
 * attributes are evaluated with them: g's ops are then recorded as dvm_lazy_op would.
 * On failure every outs[i] is NULL. */
dvm_status dvm_lazy_apply(dvm_context *ctx, const dvm_graph *g, int nargs, dvm_lazy *const *args,
                          dvm_lazy **outs);
dvm_dtype dvm_lazy_dtype(const dvm_lazy *x);
int dvm_lazy_rank(const dvm_lazy *x);
const int64_t *dvm_lazy_shape(const dvm_lazy *x);
/* x's values, computing them (and flushing the trace that holds x) if they are pending.
 * *out belongs to x: it lives until dvm_lazy_destroy(x), and must not be written. */
dvm_status dvm_lazy_tensor(dvm_lazy *x, dvm_tensor **out);
/* Flush the calling thread's trace: every pending value the host holds is computed. */
dvm_status dvm_lazy_sync(dvm_context *ctx);
/* Wait until the background compiles of every compiled trace's kernels are done (auto
 * tier), as dvm_model_wait: for benchmarks of the steady state. */
void dvm_lazy_wait(dvm_context *ctx);
/* Release the host's reference. A pending value the host no longer holds is computed
 * only if another held value needs it. Destroy every lazy value before its context. */
void dvm_lazy_destroy(dvm_lazy *x);

typedef struct dvm_lazy_options {
  dvm_tier tier;         /* the flushed graphs' tier; default DVM_TIER_AUTO */
  int threads;           /* their worker threads; 0 = one per core */
  int max_ops;           /* a trace is flushed when it holds this many ops; default 1024 */
  int64_t cache_entries; /* traces kept compiled; default 256 */
  int64_t cache_bytes;   /* bytes of those models (graphs, plans, arenas, bytecode; native
                            code is the context's, dvm_context_set_code_limit); 1 GiB */
} dvm_lazy_options;
/* The lazy front end's settings for this context, for the flushes that start after it.
 * Extern functions that flushes call must not use the lazy API (DVM_ERR_USAGE). */
dvm_status dvm_context_set_lazy_options(dvm_context *ctx, const dvm_lazy_options *opt);

typedef struct dvm_lazy_stats {
  int64_t ops;        /* ops recorded */
  int64_t flushes;    /* flushes that ran a graph */
  int64_t hits;       /* flushes whose trace was compiled already */
  int64_t misses;     /* flushes that compiled their trace */
  int64_t variants;   /* of those, compiles of a trace seen before at sizes its compiled
                         form does not cover (specialized on some dims) */
  int64_t evictions;  /* compiled traces dropped for the limits */
  int64_t entries;    /* compiled traces kept now, */
  int64_t bytes;      /* and their bytes */
} dvm_lazy_stats;
void dvm_lazy_stats_get(dvm_context *ctx, dvm_lazy_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* DVM_H */
