/* ir/parse.c — the graph text format of docs/format.md into a Graph.
 *
 * Line-oriented: each line is a comment/blank, `graph NAME` (first), an `input`/`param`
 * declaration, an assignment `NAME = op(operands..., key=value, ...)`, or the one
 * `output` line. Each assignment becomes a NodeDraft handed to ir_add_node, so the
 * parser and the C builder share every check and inference rule. A numeric literal
 * operand becomes an unnamed OP_LITERAL node of the other operands' dtype.
 *
 * Errors name the file and line: "FILE:LINE: expected ')' after operands, found ';'". */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

typedef struct Parser {
  Graph *g;
  const char *p, *end; /* the rest of the current line */
  uint32_t line;
  Err *err;
} Parser;

#define FAIL(ps, code, ...) ir_errl((ps)->err, code, (ps)->g->file, (ps)->line, __VA_ARGS__)

/* ---- lexing ----------------------------------------------------------------------------- */

static void skip(Parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r')) ps->p++;
  if (ps->p < ps->end && *ps->p == '#') ps->p = ps->end;
}

static bool at_end(Parser *ps) {
  skip(ps);
  return ps->p >= ps->end;
}

static bool is_ident0(int ch) { return isalpha(ch) || ch == '_'; }
static bool is_ident(int ch) { return isalnum(ch) || ch == '_' || ch == '.'; }

/* What is at the cursor, for messages. */
static const char *found(Parser *ps, char *buf, size_t n) {
  skip(ps);
  if (ps->p >= ps->end) return "end of line";
  if (!is_ident0((unsigned char)*ps->p) && !isdigit((unsigned char)*ps->p))
    return ir_shown_byte((unsigned char)*ps->p, buf, n); /* one character */
  size_t k = 0;
  while (ps->p + k < ps->end && is_ident((unsigned char)ps->p[k]) && k < 32) k++;
  snprintf(buf, n, "'%.*s'", (int)k, ps->p);
  return buf;
}

static bool accept(Parser *ps, char ch) {
  skip(ps);
  if (ps->p < ps->end && *ps->p == ch) return ps->p++, true;
  return false;
}

static dvm_status expect(Parser *ps, char ch, const char *what) {
  char b[48];
  if (accept(ps, ch)) return DVM_OK;
  return FAIL(ps, DVM_ERR_SYNTAX, "expected '%c' %s, found %s", ch, what, found(ps, b, sizeof b));
}

/* An identifier; returns its length (0 if none). */
static size_t ident(Parser *ps, const char **s) {
  skip(ps);
  if (ps->p >= ps->end || !is_ident0((unsigned char)*ps->p)) return 0;
  *s = ps->p;
  while (ps->p < ps->end && is_ident((unsigned char)*ps->p)) ps->p++;
  return (size_t)(ps->p - *s);
}

/* Length of a non-finite word (inf, nan) at q, or 0. */
static size_t nonfinite(const char *q, const char *end) {
  for (int i = 0; i < 2; i++) {
    const char *w = i ? "nan" : "inf";
    if (end - q >= 3 && !memcmp(q, w, 3) && (end - q == 3 || !is_ident((unsigned char)q[3])))
      return 3;
  }
  return 0;
}

static bool peek_number(Parser *ps) {
  skip(ps);
  const char *q = ps->p;
  if (q < ps->end && (*q == '-' || *q == '+')) q++;
  if (nonfinite(q, ps->end)) return true;
  return q < ps->end && (isdigit((unsigned char)*q) || (*q == '.' && q + 1 < ps->end &&
                                                       isdigit((unsigned char)q[1])));
}

/* A number: integer (isint) or float. */
static dvm_status number(Parser *ps, bool *isint, int64_t *i, double *f) {
  skip(ps);
  const char *s = ps->p;
  size_t k = 0;
  while (s + k < ps->end && (isalnum((unsigned char)s[k]) || s[k] == '.' || s[k] == '-' ||
                             s[k] == '+')) {
    if ((s[k] == '-' || s[k] == '+') && k > 0 && s[k - 1] != 'e' && s[k - 1] != 'E') break;
    k++;
  }
  char buf[64];
  if (k == 0 || k >= sizeof buf) return FAIL(ps, DVM_ERR_SYNTAX, "expected a number");
  memcpy(buf, s, k);
  buf[k] = 0;
  const char *mag = buf + (buf[0] == '-' || buf[0] == '+');
  if (nonfinite(mag, buf + k) == k - (size_t)(mag - buf)) { /* inf, -inf, nan */
    *isint = false;
    *f = mag[0] == 'n' ? NAN : buf[0] == '-' ? -INFINITY : INFINITY;
    *i = 0;
    ps->p = s + k;
    return DVM_OK;
  }
  if (strspn(mag, "0123456789.eE+-") != strlen(mag))
    return FAIL(ps, DVM_ERR_SYNTAX, "bad number '%s' (decimal digits only)", buf);
  char *e;
  *isint = strspn(buf + (buf[0] == '-' || buf[0] == '+'), "0123456789") ==
           k - (buf[0] == '-' || buf[0] == '+');
  errno = 0;
  if (*isint) {
    *i = strtoll(buf, &e, 10);
    if (errno == ERANGE) return FAIL(ps, DVM_ERR_OVERFLOW, "integer %s overflows int64", buf);
    *f = (double)*i;
  } else {
    *f = strtod(buf, &e);
    if (*e || (errno == ERANGE && isinf(*f)))
      return FAIL(ps, DVM_ERR_SYNTAX, "bad number '%s'", buf);
  }
  ps->p = s + k;
  return DVM_OK;
}

/* ---- dim expressions -------------------------------------------------------------------- */

static dvm_status dim_expr(Parser *ps, bool declare, Dim *out);

static dvm_status dim_factor(Parser *ps, bool declare, Dim *out) {
  char b[48];
  skip(ps);
  if (accept(ps, '(')) {
    if (dim_expr(ps, declare, out)) return ps->err->code;
    return expect(ps, ')', "to close the dim expression");
  }
  if (accept(ps, '-')) {
    Dim x;
    if (dim_factor(ps, declare, &x)) return ps->err->code;
    *out = ir_dim_sub(ps->g, ir_dim_const(ps->g, 0), x);
    return DVM_OK;
  }
  if (ps->p < ps->end && isdigit((unsigned char)*ps->p)) {
    bool isint;
    int64_t i;
    double f;
    if (number(ps, &isint, &i, &f)) return ps->err->code;
    if (!isint) return FAIL(ps, DVM_ERR_SYNTAX, "a dim must be an integer, found %g", f);
    *out = ir_dim_const(ps->g, i);
    return DVM_OK;
  }
  const char *s;
  size_t n = ident(ps, &s);
  if (!n) return FAIL(ps, DVM_ERR_SYNTAX, "expected a dim, found %s", found(ps, b, sizeof b));
  int64_t sym = ir_sym_find(ps->g, s, n);
  if (sym < 0 && !declare)
    return FAIL(ps, DVM_ERR_GRAPH,
                "unknown symbol '%.*s' (a symbol is declared by its first use in an input or "
                "param line)",
                (int)n, s);
  if (sym < 0) sym = ir_sym_get(ps->g, s, n, ps->line);
  *out = ir_dim_sym(ps->g, (uint32_t)sym);
  return DVM_OK;
}

static dvm_status dim_term(Parser *ps, bool declare, Dim *out) {
  if (dim_factor(ps, declare, out)) return ps->err->code;
  while (accept(ps, '*')) {
    Dim x;
    if (dim_factor(ps, declare, &x)) return ps->err->code;
    *out = ir_dim_mul(ps->g, *out, x);
  }
  return DVM_OK;
}

static dvm_status dim_expr(Parser *ps, bool declare, Dim *out) {
  if (dim_term(ps, declare, out)) return ps->err->code;
  for (;;) {
    int sign = accept(ps, '+') ? 1 : accept(ps, '-') ? -1 : 0;
    if (!sign) break;
    Dim x;
    if (dim_term(ps, declare, &x)) return ps->err->code;
    *out = sign > 0 ? ir_dim_add(ps->g, *out, x) : ir_dim_sub(ps->g, *out, x);
  }
  if (*out == DIM_NONE) return FAIL(ps, DVM_ERR_OVERFLOW, "dim expression overflows int64");
  return DVM_OK;
}

/* ---- attributes ------------------------------------------------------------------------- */

static dvm_status attr_value(Parser *ps, AttrKey key, Attr *a) {
  char b[48];
  AttrKind want = ir_attrs[key].kind;
  a->key = (uint8_t)key;
  if (want == AV_INTLIST || want == AV_DIMLIST) {
    if (!accept(ps, '['))
      return FAIL(ps, DVM_ERR_GRAPH, "attribute '%s' expects a list, found %s", ir_attrs[key].name,
                  found(ps, b, sizeof b));
    a->kind = (uint8_t)want;
    a->off = ps->g->lists.n;
    a->n = 0;
    if (!accept(ps, ']')) {
      do {
        int64_t x;
        if (want == AV_DIMLIST) {
          Dim d;
          if (dim_expr(ps, true, &d)) return ps->err->code;
          x = d;
        } else {
          bool isint;
          double f;
          if (!peek_number(ps) || number(ps, &isint, &x, &f) || !isint)
            return FAIL(ps, DVM_ERR_GRAPH, "attribute '%s' expects a list of integers",
                        ir_attrs[key].name);
        }
        vec_push(ps->g->lists, x);
        a->n++;
      } while (accept(ps, ','));
      if (expect(ps, ']', "to close the list")) return ps->err->code;
    }
    return DVM_OK;
  }
  if (want == AV_DIM) {
    Dim d;
    if (dim_expr(ps, true, &d)) return ps->err->code;
    a->kind = AV_DIM;
    a->i = d;
    return DVM_OK;
  }
  if (peek_number(ps)) {
    bool isint;
    if (number(ps, &isint, &a->i, &a->f)) return ps->err->code;
    a->kind = isint && want != AV_FLOAT ? AV_INT : AV_FLOAT;
    a->isint = isint;
    return DVM_OK;
  }
  const char *s;
  size_t n = ident(ps, &s);
  if (!n)
    return FAIL(ps, DVM_ERR_SYNTAX, "expected a value for '%s', found %s", ir_attrs[key].name,
                found(ps, b, sizeof b));
  if (want == AV_DTYPE) {
    int dt = ir_dtype_parse(s, n);
    if (dt < 0) return FAIL(ps, DVM_ERR_GRAPH, "unknown dtype '%.*s'", (int)n, s);
    a->kind = AV_DTYPE;
    a->i = dt;
    return DVM_OK;
  }
  a->kind = AV_IDENT;
  a->off = ir_str(ps->g, s, n);
  return DVM_OK;
}

/* key=value after the operands. */
static dvm_status attribute(Parser *ps, Op op, NodeDraft *d) {
  const char *s;
  char b[48];
  size_t n = ident(ps, &s);
  if (!n) return FAIL(ps, DVM_ERR_SYNTAX, "expected an attribute, found %s", found(ps, b, sizeof b));
  int key = ir_attr_lookup(s, n);
  if (key < 0) return FAIL(ps, DVM_ERR_GRAPH, "unknown attribute '%.*s' for %s", (int)n, s,
                           ir_ops[op].name);
  if (expect(ps, '=', "after the attribute name")) return ps->err->code;
  if (d->nattr >= AK_COUNT)
    return FAIL(ps, DVM_ERR_GRAPH, "attribute '%s' given twice", ir_attrs[key].name);
  return attr_value(ps, (AttrKey)key, &d->attr[d->nattr++]);
}

/* ---- lines ------------------------------------------------------------------------------ */

/* `input NAME: DTYPE[dims]` (optionally `values=[dims]`) or `param ...` */
static dvm_status declaration(Parser *ps, Op op) {
  char b[48];
  NodeDraft d = {.op = op, .line = ps->line};
  if (!(d.name_len = ident(ps, &d.name)))
    return FAIL(ps, DVM_ERR_SYNTAX, "expected a name after '%s', found %s", ir_ops[op].name,
                found(ps, b, sizeof b));
  if (expect(ps, ':', "after the name")) return ps->err->code;
  const char *s;
  size_t n = ident(ps, &s);
  if (!n) return FAIL(ps, DVM_ERR_SYNTAX, "expected a dtype, found %s", found(ps, b, sizeof b));
  int dt = ir_dtype_parse(s, n);
  if (dt < 0) return FAIL(ps, DVM_ERR_GRAPH, "unknown dtype '%.*s'", (int)n, s);
  d.dtype = (DType)dt;
  if (expect(ps, '[', "after the dtype")) return ps->err->code;
  if (!accept(ps, ']')) {
    do {
      if (d.rank >= DVM_MAX_RANK)
        return FAIL(ps, DVM_ERR_SHAPE, "rank exceeds %d", DVM_MAX_RANK);
      if (dim_expr(ps, true, &d.shape[d.rank])) return ps->err->code;
      d.rank++;
    } while (accept(ps, ','));
    if (expect(ps, ']', "to close the shape")) return ps->err->code;
  }
  if (!at_end(ps) && attribute(ps, op, &d)) return ps->err->code; /* an input's values=[...] */
  if (!at_end(ps))
    return FAIL(ps, DVM_ERR_SYNTAX, "unexpected %s after the declaration", found(ps, b, sizeof b));
  return ir_add_node(ps->g, &d, ps->err) < 0 ? ps->err->code : DVM_OK;
}

/* Literal operands wait until the dtype of the others is known. */
typedef struct Pending {
  uint32_t pos;
  bool isint;
  int64_t i;
  double f;
} Pending;

static int64_t literal(Parser *ps, const Pending *p, DType dt) {
  NodeDraft d = {.op = OP_LITERAL, .line = ps->line, .dtype = dt, .nattr = 1};
  if (!ir_dtype_is_float(dt) && !p->isint) {
    FAIL(ps, DVM_ERR_DTYPE, "literal %g is not an integer (the other operand is %s)", p->f,
         ir_dtype_name(dt));
    return -1;
  }
  d.attr[0] = (Attr){.key = AK_VALUE, .kind = AV_FLOAT, .isint = p->isint, .i = p->i, .f = p->f};
  return ir_add_node(ps->g, &d, ps->err);
}

/* `NAME = op(operands..., attrs...)` */
static dvm_status assignment(Parser *ps, const char *name, size_t nlen) {
  char b[48];
  const char *s;
  size_t n = ident(ps, &s);
  if (!n) return FAIL(ps, DVM_ERR_SYNTAX, "expected an op after '=', found %s", found(ps, b, sizeof b));
  int op = ir_op_lookup(s, n);
  if (op < 0 || ir_ops[op].kind == OPK_SOURCE)
    return FAIL(ps, DVM_ERR_GRAPH, "unknown op '%.*s'", (int)n, s);
  NodeDraft d = {.op = (Op)op, .name = name, .name_len = nlen, .line = ps->line};
  Pending lit[64];
  uint32_t nlit = 0;
  if (expect(ps, '(', "after the op name")) return ps->err->code;
  bool attrs = false;
  if (!accept(ps, ')')) {
    do {
      skip(ps);
      const char *save = ps->p;
      if (peek_number(ps)) {
        if (attrs) return FAIL(ps, DVM_ERR_SYNTAX, "operands must come before attributes");
        if (d.nin >= 64) return FAIL(ps, DVM_ERR_GRAPH, "too many operands");
        Pending *p = &lit[nlit++];
        if (number(ps, &p->isint, &p->i, &p->f)) return ps->err->code;
        p->pos = d.nin++;
        continue;
      }
      const char *v;
      size_t vn = ident(ps, &v);
      if (!vn)
        return FAIL(ps, DVM_ERR_SYNTAX, "expected an operand, found %s", found(ps, b, sizeof b));
      skip(ps);
      if (ps->p < ps->end && *ps->p == '=') { /* an attribute */
        ps->p = save;
        attrs = true;
        if (attribute(ps, (Op)op, &d)) return ps->err->code;
        continue;
      }
      if (attrs) return FAIL(ps, DVM_ERR_SYNTAX, "operands must come before attributes");
      if (ps->p < ps->end && *ps->p == '(')
        return FAIL(ps, DVM_ERR_SYNTAX, "operands are value names or numbers: assign '%.*s(...)' "
                    "to a value first", (int)vn, v);
      int64_t id = ir_find(ps->g, v, vn);
      if (id < 0) return FAIL(ps, DVM_ERR_GRAPH, "undefined value '%.*s'", (int)vn, v);
      if (d.nin >= 64) return FAIL(ps, DVM_ERR_GRAPH, "too many operands");
      d.in[d.nin++] = (uint32_t)id;
    } while (accept(ps, ','));
    if (expect(ps, ')', "after the operands")) return ps->err->code;
  }
  if (!at_end(ps)) return FAIL(ps, DVM_ERR_SYNTAX, "unexpected %s after ')'", found(ps, b, sizeof b));
  if (nlit) {
    /* a literal takes the dtype of the value operands (for select: the branches) */
    DType dt = DT_F32;
    bool known = false;
    for (uint32_t i = op == OP_SELECT ? 1 : 0; i < d.nin && !known; i++) {
      bool is_lit = false;
      for (uint32_t k = 0; k < nlit; k++) is_lit |= lit[k].pos == i;
      if (!is_lit) dt = (DType)ps->g->nodes.v[d.in[i]].dtype, known = true;
    }
    if (!known) { /* only literals: f32 unless every one is an integer */
      bool ints = true;
      for (uint32_t k = 0; k < nlit; k++) ints &= lit[k].isint;
      dt = ints ? DT_I64 : DT_F32;
    }
    for (uint32_t k = 0; k < nlit; k++) {
      DType ldt = op == OP_SELECT && lit[k].pos == 0 ? DT_BOOL : dt;
      int64_t id = literal(ps, &lit[k], ldt);
      if (id < 0) return ps->err->code;
      d.in[lit[k].pos] = (uint32_t)id;
    }
  }
  return ir_add_node(ps->g, &d, ps->err) < 0 ? ps->err->code : DVM_OK;
}

static dvm_status output_line(Parser *ps, uint32_t *seen) {
  char b[48];
  if (*seen)
    return FAIL(ps, DVM_ERR_GRAPH, "a second output line (the first is line %u)", *seen);
  *seen = ps->line;
  do {
    const char *s;
    size_t n = ident(ps, &s);
    if (!n) return FAIL(ps, DVM_ERR_SYNTAX, "expected a value name, found %s", found(ps, b, sizeof b));
    int64_t v = ir_find(ps->g, s, n);
    if (v < 0) return FAIL(ps, DVM_ERR_GRAPH, "undefined value '%.*s'", (int)n, s);
    vec_push(ps->g->outputs, (uint32_t)v);
    if (accept(ps, ',') && at_end(ps)) return FAIL(ps, DVM_ERR_SYNTAX, "expected a value name after ','");
  } while (!at_end(ps));
  return DVM_OK;
}

static bool word(const char *s, size_t n, const char *w) { return strlen(w) == n && !memcmp(s, w, n); }

static dvm_status line(Parser *ps, bool *have_graph, uint32_t *outputs) {
  char b[48];
  if (at_end(ps)) return DVM_OK;
  const char *s;
  size_t n = ident(ps, &s);
  if (!n) return FAIL(ps, DVM_ERR_SYNTAX, "expected a name, found %s", found(ps, b, sizeof b));
  skip(ps);
  bool assign = ps->p < ps->end && *ps->p == '=';
  if (!*have_graph) {
    if (assign || !word(s, n, "graph"))
      return FAIL(ps, DVM_ERR_SYNTAX, "expected 'graph NAME' as the first line");
    const char *gn;
    size_t gl = ident(ps, &gn);
    if (!gl || !at_end(ps)) return FAIL(ps, DVM_ERR_SYNTAX, "expected 'graph NAME' as the first line");
    ps->g->name = ir_str(ps->g, gn, gl);
    *have_graph = true;
    return DVM_OK;
  }
  if (assign) {
    ps->p++;
    return assignment(ps, s, n);
  }
  if (word(s, n, "input")) return declaration(ps, OP_INPUT);
  if (word(s, n, "param")) return declaration(ps, OP_PARAM);
  if (word(s, n, "output")) return output_line(ps, outputs);
  if (word(s, n, "graph")) return FAIL(ps, DVM_ERR_SYNTAX, "one graph per file");
  return FAIL(ps, DVM_ERR_SYNTAX, "expected '=' after '%.*s', found %s", (int)n, s,
              found(ps, b, sizeof b));
}

Graph *ir_parse(const char *text, size_t len, const char *file, Err *err) {
  Graph *g = ir_graph_new(file);
  if (!g) return ir_err(err, DVM_ERR_NOMEM, "out of memory"), NULL;
  Parser ps = {.g = g, .err = err};
  bool have_graph = false;
  uint32_t outputs = 0;
  const char *p = text, *end = text + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    ps.line++;
    ps.p = p;
    ps.end = nl ? nl : end;
    if (memchr(p, '\0', (size_t)(ps.end - p))) {
      FAIL(&ps, DVM_ERR_SYNTAX, "NUL byte in graph text");
      goto fail;
    }
    if (line(&ps, &have_graph, &outputs)) goto fail;
    p = nl ? nl + 1 : end;
  }
  if (!have_graph) {
    ir_errl(err, DVM_ERR_SYNTAX, file, ps.line ? ps.line : 1, "expected 'graph NAME' as the first line");
    goto fail;
  }
  if (!outputs) {
    ir_errl(err, DVM_ERR_GRAPH, file, ps.line, "graph has no output line");
    goto fail;
  }
  if (ir_finish(g, err)) goto fail;
  return g;
fail:
  ir_graph_free(g);
  return NULL;
}

dvm_status ir_parse_attrs(Graph *g, const char *text, NodeDraft *d, Err *err) {
  Parser ps = {.g = g, .p = text, .end = text + strlen(text), .line = 0, .err = err};
  if (at_end(&ps)) return DVM_OK;
  do {
    if (attribute(&ps, d->op, d)) return err->code;
  } while (accept(&ps, ','));
  char b[48];
  if (!at_end(&ps))
    return FAIL(&ps, DVM_ERR_SYNTAX, "unexpected %s in attributes", found(&ps, b, sizeof b));
  return DVM_OK;
}

dvm_status ir_parse_dim(Graph *g, const char *text, bool declare, uint32_t line, Dim *out,
                        Err *err) {
  Parser ps = {.g = g, .p = text, .end = text + strlen(text), .line = line, .err = err};
  if (dim_expr(&ps, declare, out)) return err->code;
  char b[48];
  if (!at_end(&ps))
    return FAIL(&ps, DVM_ERR_SYNTAX, "unexpected %s in dim '%s'", found(&ps, b, sizeof b), text);
  return DVM_OK;
}
