/* ir/ir.h — the map of the ir layer: the SSA Graph with symbolic shapes.
 *
 * A Graph is a list of Nodes in SSA order. Node i defines value i: values, nodes, dims
 * and symbols are all referred to by uint32 index. Dims are interned expressions
 * (constants, symbols, canonical sums of products of symbols with integer
 * coefficients), so two dims are equal iff their ids are equal once symbols are
 * replaced by their union-find representative (ir_dim_subst).
 *
 * Inference runs as each node is added (parser and builder alike): it checks dtypes,
 * computes the output shape, and records every dim equality it relies on as a
 * Constraint with the node's graph line; equalities of a symbol with another symbol or
 * an expression are also solved by union-find (deduction). ir_finish then rewrites
 * every shape in canonical form. The runtime re-checks every constraint against
 * concrete values (runtime/bind.c).
 *
 * Files: dim.c (interned dims, union-find, evaluation), graph.c (nodes, attrs, names),
 * infer.c (dtype/shape inference, deduction), parse.c (text format), print.c (printer
 * and dumps), verify.c (invariants between passes), extern.c (the extern signature
 * language, mapping a call node onto a signature). */
#ifndef DVM_IR_H
#define DVM_IR_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "dvm.h"

/* ---- growable arrays ----------------------------------------------------------------- */

#define VEC(T)                                                                             \
  struct {                                                                                 \
    T *v;                                                                                  \
    uint32_t n, cap;                                                                       \
  }
/* Make room for k more elements; false if out of memory. (The test inline: pushes are
 * the encoders' and the parser's inner loops.) */
#define vec_reserve(a, k) \
  ((a).n + (k) <= (a).cap || ir_grow((void **)&(a).v, &(a).cap, (a).n + (k), sizeof(*(a).v)))
/* Append x (must be reserved or reservable; aborts on out of memory). */
#define vec_push(a, x)                                                                     \
  (vec_reserve(a, 1) ? ((a).v[(a).n++] = (x), true) : (ir_oom(), false))
#define vec_free(a) (free((a).v), (a).v = NULL, (a).n = (a).cap = 0)
bool ir_grow(void **p, uint32_t *cap, uint32_t need, size_t elem);
/* Scratch vectors that start in a caller's array `few` (v = few, cap its length) and move
 * to the heap when they outgrow it: no allocation for the usual small case. */
#define vec_push_from(a, few, x)                                                           \
  (((a).n + 1 <= (a).cap || ir_grow_from((void **)&(a).v, &(a).cap, (a).n + 1, sizeof(*(a).v), few)) \
       ? ((a).v[(a).n++] = (x), true)                                                      \
       : (ir_oom(), false))
#define vec_free_from(a, few) ((a).v != (few) ? free((a).v) : (void)0, (a).v = NULL, (a).n = (a).cap = 0)
bool ir_grow_from(void **p, uint32_t *cap, uint32_t need, size_t elem, const void *few);
_Noreturn void ir_oom(void);

/* ---- errors ---------------------------------------------------------------------------- */

/* An error being reported: a status and its message. Layers fill it; the API copies it
 * into the calling thread's last-error slot. */
typedef struct Err {
  dvm_status code;
  char msg[1024];
} Err;
/* Set err (if non-null) and return code. */
dvm_status ir_err(Err *err, dvm_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Set err with the graph-line prefix "FILE:LINE: " when line > 0. */
dvm_status ir_errl(Err *err, dvm_status code, const char *file, uint32_t line,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Byte ch as an error message shows what was found: 'c' when printable, else by its value
 * ("byte 0xDB"), so that messages stay printable UTF-8. Returns buf. */
const char *ir_shown_byte(unsigned char ch, char *buf, size_t n);

/* ---- threads and stacks ------------------------------------------------------------------ */

/* Bytes of the calling thread's stack below the caller's frame; SIZE_MAX when they cannot
 * be read. A host may call dvm from threads with small stacks (musl's default is 128 KB):
 * what needs more (kernels, LLVM) checks this and runs on a thread of its own instead. */
size_t ir_stack_left(void);
/* pthread_create with a stack of at least min_stack bytes (the process's default stack
 * when that is larger), so dvm's own threads do not inherit a small RLIMIT_STACK. */
int ir_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, size_t min_stack);
/* The monotonic clock in microseconds (the stages' and compiles' timings). */
double ir_now_us(void);

/* ---- dtypes ---------------------------------------------------------------------------- */

typedef dvm_dtype DType;
#define DT_F32 DVM_F32
#define DT_F16 DVM_F16
#define DT_BF16 DVM_BF16
#define DT_I32 DVM_I32
#define DT_I64 DVM_I64
#define DT_BOOL DVM_BOOL
#define DT_F64 DVM_F64
#define DT_I8 DVM_I8
#define DT_I16 DVM_I16
#define DT_U8 DVM_U8
#define DT_U16 DVM_U16
#define DT_U32 DVM_U32
#define DT_U64 DVM_U64
#define DT_COUNT DVM_DTYPE_COUNT

const char *ir_dtype_name(DType dt);      /* "f32" */
int ir_dtype_parse(const char *s, size_t n); /* DType or -1 */
size_t ir_dtype_size(DType dt);
bool ir_dtype_is_float(DType dt);    /* f32 f16 bf16 f64 */
bool ir_dtype_is_int(DType dt);      /* the signed and unsigned integers (not bool) */
bool ir_dtype_is_unsigned(DType dt); /* u8 u16 u32 u64 */
int ir_dtype_bits(DType dt);         /* an integer dtype's width, else 0 */
/* The low 64 bits of an integer result narrowed to integer or bool dtype dt: an n-bit
 * dtype keeps the low n bits, sign- or zero-extended (two's complement wrap); bool is
 * x != 0; a u64 keeps its bits (the int64 of the same bits). The unsigned-to-signed
 * conversions are modular in GCC and Clang (implementation-defined, never undefined). */
int64_t ir_dtype_wrap(DType dt, uint64_t x);
/* The int64 values of integer dtype dt: its range, [0, INT64_MAX] for u64 (the u64 values
 * an int64 holds as themselves); INT64's for other dtypes. */
void ir_dtype_range(DType dt, int64_t *lo, int64_t *hi);
/* x saturated at integer dtype dt's range (a u64's 0 for a negative x), bool x != 0: a
 * value that is not the result of integer arithmetic (a literal, a truncated float). */
int64_t ir_dtype_saturate(DType dt, int64_t x);

/* ---- ops and attributes ------------------------------------------------------------------ */

typedef uint32_t Dim; /* an interned dim expression (below) */
#define DIM_NONE UINT32_MAX

typedef enum OpKind {
  OPK_SOURCE,  /* input, param, literal */
  OPK_UNARY,
  OPK_BINARY,
  OPK_ELEMENT, /* select, clip, cast */
  OPK_REDUCE,
  OPK_NORM,
  OPK_LAYOUT,
  OPK_MATMUL,
  OPK_CONST,
  OPK_EXTERN
} OpKind;

enum {
  F_FLOAT = 1 << 0, /* operands must be float */
  F_INT = 1 << 1,   /* operands may be integer */
  F_BOOLOK = 1 << 2,/* operands may be bool */
  F_CMP = 1 << 3,   /* result is bool */
  F_NUM = F_FLOAT | F_INT,
  F_ANY = F_FLOAT | F_INT | F_BOOLOK,
  F_BOOL = F_BOOLOK
};

typedef enum Op {
#define OP(id, name, arity, kind, flags, attrs) OP_##id,
#include "ops.def"
#undef OP
  OP_COUNT
} Op;

typedef enum AttrKey {
#define AK(id, name, kind) AK_##id,
#include "attrs.def"
#undef AK
  AK_COUNT
} AttrKey;

typedef enum AttrKind { AV_INT, AV_FLOAT, AV_DTYPE, AV_IDENT, AV_DIM, AV_INTLIST, AV_DIMLIST } AttrKind;

typedef struct OpInfo {
  const char *name;
  int arity; /* -1: one or more */
  OpKind kind;
  unsigned flags;
  uint32_t attrs; /* bitmask of 1u << AK_* */
} OpInfo;
extern const OpInfo ir_ops[OP_COUNT];
typedef struct AttrInfo {
  const char *name;
  AttrKind kind;
} AttrInfo;
extern const AttrInfo ir_attrs[AK_COUNT];
/* An input with `values` has at most this many elements (ir/infer.c check_values). */
#define IR_VALUES_MAX 64
int ir_op_lookup(const char *s, size_t n);   /* Op or -1 */
int ir_attr_lookup(const char *s, size_t n); /* AttrKey or -1 */

/* One attribute of a node, as written. Lists live in Graph.lists: AV_INTLIST entries
 * are integers, AV_DIMLIST entries are Dim ids. */
typedef struct Attr {
  uint8_t key;   /* AttrKey */
  uint8_t kind;  /* AttrKind */
  uint8_t isint; /* AV_FLOAT written as an integer: print it as one */
  int64_t i;     /* AV_INT, AV_DTYPE, AV_DIM (a Dim id), AV_FLOAT when isint */
  double f;      /* AV_FLOAT */
  uint32_t off;  /* lists: first entry in Graph.lists; AV_IDENT: offset in Graph.strs */
  uint32_t n;    /* lists: entry count */
  Dim canon;     /* AV_DIM, set by ir_finish: the dim in canonical form */
} Attr;

/* ---- dims -------------------------------------------------------------------------------- */

/* One term of a dim: coef * sym[0] * sym[1] * ... (symbols sorted, repeats allowed). */
#define DIM_MAX_DEGREE 6
typedef struct DimTerm {
  int64_t coef;
  uint8_t deg;
  uint32_t sym[DIM_MAX_DEGREE];
} DimTerm;
#define DIM_MAX_TERMS 16

/* Interning table: each Dim is a run in `code`: [nterms, then per term: coef, deg,
 * syms...], terms in canonical order (by degree, then symbols), no zero coefficients,
 * at most one constant term (deg 0). */
typedef struct DimTable {
  VEC(int64_t) code;
  VEC(uint32_t) start; /* start[d]: offset of dim d in code */
  uint32_t *hash;      /* open addressing: dim id + 1, 0 = empty */
  uint32_t hcap;
} DimTable;

/* A symbol: a name, its union-find parent, and what its class is bound to. */
typedef struct Symbol {
  uint32_t name;   /* offset in Graph.strs */
  uint32_t parent; /* union-find; parent == self for a representative */
  Dim bound;       /* representatives only: DIM_NONE, or the expression (over other
                      representatives) the class equals */
  uint32_t line;   /* where the symbol was declared */
  Dim canon;       /* set by ir_finish: the symbol over free representatives */
  bool data;       /* bound from an input's data, whose elements an importer may yet
                      compare: deduction joins it with a symbol or a constant, never
                      binds it to an expression (the equation stays a constraint) */
} Symbol;

/* A recorded fact the runtime checks: a == b (CON_EQ) or a <= b (CON_LE). */
typedef enum ConKind { CON_EQ, CON_LE } ConKind;
typedef struct Constraint {
  uint8_t kind;
  Dim a, b;      /* as recorded, before substitution */
  uint32_t node; /* the node that relied on it */
  uint32_t line;
  Dim diff;      /* CON_EQ, set by ir_finish: a - b over free representatives */
} Constraint;

/* ---- extern functions ------------------------------------------------------------------ */
/* A C function a host registered (dvm_register_extern; docs/extern.md), described as plain
 * data so that every layer can read it: the runtime owns the registry and libffi
 * (runtime/ffi.c), the jit reads the signature and calls the function. */

enum { EXT_MAX_PARAMS = 16, EXT_NAME_MAX = 64, EXT_SIG_MAX = 256 };

/* A C type of the signature language. */
typedef enum ExtType { ET_VOID, ET_I32, ET_I64, ET_F32, ET_F64, ET_PTR } ExtType;

typedef struct ExtParam {
  uint8_t type; /* ExtType: a scalar or ET_PTR */
  int8_t dtype; /* ET_PTR: the DType pointed to, -1 for void* (any) */
} ExtParam;

typedef struct Extern {
  char name[EXT_NAME_MAX];
  char sig[EXT_SIG_MAX];  /* the signature as registered */
  void (*fn)(void);       /* the host's function */
  uint8_t ret;            /* ExtType: ET_VOID or a scalar */
  uint8_t nparams;
  ExtParam param[EXT_MAX_PARAMS];
  uint64_t hash;          /* of the name, the signature and fn: part of every kernel key */
  /* Call fn through libffi with the cif prepared at registration: args[i] points at
     parameter i's value, ret (ignored for void) at 8 bytes for the result. Set by
     runtime/ffi.c, so that the bytecode tier needs no ffi.h. Safe from many threads. */
  void (*invoke)(const struct Extern *e, void **args, void *ret);
} Extern;

/* Where a call node's argument for one C parameter comes from (ir_extern_args). */
typedef enum ExtSrc { ES_OPERAND, ES_OUTPUT, ES_DIM } ExtSrc;
typedef struct ExtArg {
  uint8_t src;    /* ExtSrc */
  uint32_t index; /* ES_OPERAND: operand number; ES_DIM: entry of the dims attribute */
} ExtArg;

/* ---- the graph --------------------------------------------------------------------------- */

typedef struct Node {
  uint16_t op;     /* Op */
  uint8_t dtype;   /* DType of the value this node defines */
  uint8_t rank;
  uint32_t name;   /* offset in Graph.strs; literals have "" */
  uint32_t line;   /* graph line, 0 if built through the API */
  uint32_t in;     /* first operand in Graph.operands */
  uint32_t nin;
  uint32_t attr;   /* first attribute in Graph.attrs */
  uint32_t nattr;
  uint32_t shape;  /* first of `rank` Dims in Graph.shapes: canonical after ir_finish */
  uint32_t decl;   /* sources: the declared dims as written (printing, round trip) */
} Node;

typedef struct Graph {
  char *file;                 /* source name for messages (malloc'd) */
  uint32_t name;              /* graph name, offset in strs */
  VEC(char) strs;             /* string pool, NUL-terminated entries; offset 0 is "" */
  VEC(Node) nodes;
  VEC(uint32_t) operands;
  VEC(Attr) attrs;
  VEC(int64_t) lists;
  VEC(int64_t) clists;        /* set by ir_finish: lists with AV_DIMLIST dims canonical */
  VEC(Dim) shapes;
  VEC(uint32_t) outputs;      /* value ids */
  VEC(uint32_t) decls;        /* input and param nodes in declaration order */
  DimTable dims;
  VEC(Symbol) syms;
  VEC(Constraint) cons;
  uint32_t *names;            /* open addressing: value id + 1 by name */
  uint32_t ncap;
  uint32_t literal_count;
  bool finished;              /* ir_finish ran */
  const Extern **ext;         /* per value: a call node's registered function, resolved when
                                 a model is compiled (runtime/ffi.c), else NULL; the
                                 context owns the Externs. NULL until resolved. */
} Graph;

/* graph.c */
Graph *ir_graph_new(const char *file);
void ir_graph_free(Graph *g);
Graph *ir_graph_clone(const Graph *g); /* a deep copy; NULL if out of memory */
/* Empty g for reuse, keeping its memory (a trace between flushes); its interned dims stay
 * unless there are more than keep_dims of them (only a symbol-free graph may keep them). */
void ir_graph_reset(Graph *g, uint32_t keep_dims);
uint32_t ir_str(Graph *g, const char *s, size_t n); /* add to the pool */
static inline const char *ir_s(const Graph *g, uint32_t off) { return g->strs.v + off; }
static inline const Node *ir_node(const Graph *g, uint32_t v) { return &g->nodes.v[v]; }
static inline const Dim *ir_shape(const Graph *g, uint32_t v) {
  return g->shapes.v + g->nodes.v[v].shape;
}
static inline uint32_t ir_operand(const Graph *g, uint32_t v, uint32_t i) {
  return g->operands.v[g->nodes.v[v].in + i];
}
int64_t ir_find(const Graph *g, const char *name, size_t n); /* value id or -1 */
/* A name the text format can hold: [A-Za-z_][A-Za-z0-9_.]*, and not inf or nan. */
bool ir_valid_name(const char *s, size_t n);
/* A node under construction: operands and attributes pushed, then ir_add_node infers it. */
typedef struct NodeDraft {
  Op op;
  const char *name; /* NULL for literals */
  size_t name_len;
  uint32_t line;
  uint32_t in[64];
  uint32_t nin;
  Attr attr[AK_COUNT];
  uint32_t nattr;
  /* sources only: */
  DType dtype;
  uint8_t rank;
  Dim shape[DVM_MAX_RANK];
} NodeDraft;
/* Append a node: checks the name, arity and attributes, runs inference (infer.c).
 * Returns the value id, or -1 with err set. */
int64_t ir_add_node(Graph *g, const NodeDraft *d, Err *err);
/* The sizes of g's tables, and undoing what was added after them: for a front end that
 * refuses a node inference accepted. The nodes undone must be unnamed and must not have
 * unified or bound symbols that existed at the mark (the lazy front end's traces, whose
 * dims are constants). */
typedef struct IrMark {
  uint32_t nodes, strs, operands, attrs, lists, shapes, cons, syms, decls;
} IrMark;
IrMark ir_mark(const Graph *g);
void ir_undo(Graph *g, const IrMark *m);
/* A nameless input or param (op) of dtype dt and the given dims (valid: constants >= 0 or
 * declared symbols), as ir_add_node would add it, without its checks: the lazy front end's
 * leaves, one per value a trace reads. Returns the value id. */
int64_t ir_add_source(Graph *g, Op op, DType dt, int rank, const Dim *shape);
/* Find an attribute of node v; NULL if absent. */
const Attr *ir_attr(const Graph *g, uint32_t v, AttrKey k);
int64_t ir_attr_int(const Graph *g, uint32_t v, AttrKey k, int64_t dflt);
double ir_attr_float(const Graph *g, uint32_t v, AttrKey k, double dflt);
/* Normalize axis a (negative counts from the end) for rank r; -1 if out of range. */
int ir_axis(int64_t a, int r);

/* dim.c */
Dim ir_dim_const(Graph *g, int64_t c);
Dim ir_dim_sym(Graph *g, uint32_t sym);
/* Arithmetic on dims; DIM_NONE on coefficient overflow or an expression too large. */
Dim ir_dim_add(Graph *g, Dim a, Dim b);
Dim ir_dim_sub(Graph *g, Dim a, Dim b);
Dim ir_dim_mul(Graph *g, Dim a, Dim b);
/* Decode a dim into terms; returns the term count. */
uint32_t ir_dim_terms(const Graph *g, Dim d, DimTerm *t);
Dim ir_dim_from_terms(Graph *g, DimTerm *t, uint32_t n); /* canonicalizes t in place */
bool ir_dim_is_const(const Graph *g, Dim d, int64_t *c);
bool ir_dim_is_sym(const Graph *g, Dim d, uint32_t *sym); /* exactly 1*sym */
bool ir_dim_has_sym(const Graph *g, Dim d, uint32_t sym); /* sym appears in a term of d */
/* Symbol ids: find or declare by name. */
uint32_t ir_sym_get(Graph *g, const char *name, size_t n, uint32_t line);
int64_t ir_sym_find(const Graph *g, const char *name, size_t n); /* -1 if absent */
uint32_t ir_sym_rep(const Graph *g, uint32_t sym);
/* Replace every symbol by its representative or its class's bound expression. */
Dim ir_dim_subst(Graph *g, Dim d);
/* Record a == b (deduction: unify symbols, bind a symbol to an expression) and the
 * constraint; a contradiction (two different constants) is an error at `line`. */
dvm_status ir_unify(Graph *g, Dim a, Dim b, uint32_t node, uint32_t line, Err *err);
/* Record a <= b for the runtime; an error if both are constants and a > b. */
dvm_status ir_require_le(Graph *g, Dim a, Dim b, uint32_t node, uint32_t line, Err *err);
/* Evaluate with symbol values indexed by symbol id (every symbol of d needs a value).
 * False on overflow. */
bool ir_dim_eval(const Graph *g, Dim d, const int64_t *symval, int64_t *out);
/* Text of a dim ("N*S + 1") into buf; returns buf. */
char *ir_dim_str(const Graph *g, Dim d, char *buf, size_t n);

/* infer.c */
/* Infer node v's dtype and shape from its operands and attributes (called by
 * ir_add_node); records constraints. */
dvm_status ir_infer(Graph *g, uint32_t v, Err *err);
/* After the last node: substitute every shape and dim attribute into canonical form
 * (declarations and attributes as written stay for printing), check the outputs. */
dvm_status ir_finish(Graph *g, Err *err);

/* parse.c */
Graph *ir_parse(const char *text, size_t len, const char *file, Err *err);
/* Parse "key=value, ..." attribute text (the builder's attrs) into d. */
dvm_status ir_parse_attrs(Graph *g, const char *text, NodeDraft *d, Err *err);
/* Parse one dim expression (the builder's dims); declares symbols when `declare`. */
dvm_status ir_parse_dim(Graph *g, const char *text, bool declare, uint32_t line, Dim *out,
                        Err *err);

/* print.c */
/* A growing string: ir_put appends printf-style; ir_buf_done NUL-terminates and hands
 * the malloc'd text over. Dumps of every layer print through it. */
typedef VEC(char) Buf;
void ir_put(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *ir_buf_done(Buf *b);
/* The graph in the text format (malloc'd). */
char *ir_print(const Graph *g);
/* `dvm dump --stage ir`: the text format with each value's inferred shape. */
char *ir_dump_ir(const Graph *g);
/* `dvm dump --stage deduce`: symbol classes, bindings, constraints, canonical shapes. */
char *ir_dump_deduce(const Graph *g);

/* extern.c */
/* Parse a signature (docs/extern.md) into e's ret, nparams and param; err names the
 * problem and its column. */
dvm_status ir_extern_parse(const char *sig, Extern *e, Err *err);
/* The text of a C type ("f32*", "void*", "i64"). */
const char *ir_ext_type_name(ExtParam p);
/* Map call node v onto e's parameters (args[0..e->nparams)): operands in order, then the
 * output (a void result), then the entries of dims=[...]; checks the count, the dtypes
 * and that by-value operands hold one element. Errors name the line, the node and fn. */
dvm_status ir_extern_args(const Graph *g, uint32_t v, const Extern *e, ExtArg *args, Err *err);
/* Convert a scalar operand's value (from_float: f, else i) to parameter type t, as cast
 * does (float to integer truncates, saturates, NaN is 0; i64 to i32 wraps), into *out
 * (8 bytes, the C type t). */
void ir_extern_scalar(ExtType t, bool from_float, double f, int64_t i, void *out);
/* Does value v hold exactly one element whatever the symbols (all dims constant 1)? */
bool ir_is_one_element(const Graph *g, uint32_t v);

/* verify.c */
/* Check the invariants every pass relies on; a failure is a bug, reported in err. */
dvm_status ir_verify(const Graph *g, Err *err);

#endif /* DVM_IR_H */
