/*
 * Fused CPU kernels for quantscope (plain C, loaded with ctypes; no Python or torch headers needed).
 *
 * Each kernel does in one pass what the torch reference in grid.py does with a chain of tensor ops,
 * with the same float32 arithmetic in the same order, so results are bit-identical (tested).
 *
 *   int:   q = clamp(round(x * (1/s)) + z, qmin, qmax);   fake: (q - z) * s      (torch's formula)
 *   float: step = 2^(clamp(floor(log2|y|), emin, emax) - M);  q = round(|y| / step) * step
 *   mx:    s = 2^(floor(log2 amax) - emax_elem) per block;   element = round_to_format(x / s)
 *
 * Work is described by a region of the (outer, length, inner) view used by granularity.py; Python
 * splits the tensor into one region per thread and calls these functions without the GIL.
 * Every kernel returns a nonzero count when it saw non-finite inputs (Python then rejects them with
 * their exact count and position, or they were passed through).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define QS_INLINE static inline __attribute__((always_inline))
#else
#define QS_INLINE static inline
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define QS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define QS_CLONES
#endif

typedef struct {
    int64_t outer, length, inner, group;
    int64_t p_outer, p_inner;
    int64_t o_begin, o_end, k_begin, k_end;
} qs_region;

typedef struct {
    int32_t exp_bits, man_bits, bias, emin, emax;
    int32_t special; /* 0 ieee, 1 fn, 2 none */
    float max_value;
} qs_float_format;

/* The format plus everything derived from it and the overflow mode, computed once per call so the
 * per-element code is arithmetic and selects only (which is what lets the compiler vectorize it). */
typedef struct {
    int32_t exp_bits, man_bits, bias, emin, emax, saturate, is_e8;
    float max_value, special_value, min_normal, sub_mul;
    uint32_t shift, rebias, nan_code, inf_code, max_code, over_code;
} qs_fmt;

enum { R_NEAREST_EVEN = 0, R_NEAREST_AWAY = 1, R_FLOOR = 2, R_CEIL = 3, R_TOWARD_ZERO = 4 };
enum { C_F32 = 0, C_I8 = 1, C_U8 = 2, C_I16 = 3, C_I32 = 4 };
enum { O_SATURATE = 0, O_NONSATURATING = 1 };

QS_INLINE uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
QS_INLINE float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
QS_INLINE int finite_f(float v) { return fabsf(v) <= FLT_MAX; }

/* x scaled to code units; a nonzero x never becomes 0 (so floor/ceil of tiny values stay correct) */
QS_INLINE float keep_tiny(float t, float x) { return (t == 0.0f && x != 0.0f) ? copysignf(FLT_TRUE_MIN, x) : t; }

/* 2^k for integer k in [-149, 127], exact (subnormal powers of two included) */
QS_INLINE float pow2i(int32_t k) {
    return k >= -126 ? u2f((uint32_t)(k + 127) << 23) : u2f(1u << (k + 149));
}

/* ----- rounding of signed values (int path) ---------------------------------------------------- */
QS_INLINE float rnd_ne(float t) { return nearbyintf(t); }
QS_INLINE float rnd_na(float t) {
    float r = truncf(t);
    return r + (fabsf(t - r) >= 0.5f ? copysignf(1.0f, t) : 0.0f);
}
QS_INLINE float rnd_fl(float t) { return floorf(t); }
QS_INLINE float rnd_ce(float t) { return ceilf(t); }
QS_INLINE float rnd_tz(float t) { return truncf(t); }

/* Directed modes are exact on the grid of *reconstructed* values v(q) = (q - z) * s: floor returns the
 * largest v(q) <= x, ceil the smallest v(q) >= x, whatever rounding x * (1/s) suffered. This makes
 * the error sign exact and Q(Q(x)) == Q(x) for any scale. */
QS_INLINE float ifix_ne(float q, float x, float zf, float s) { (void)x; (void)zf; (void)s; return q; }
QS_INLINE float ifix_fl(float q, float x, float zf, float s) {
    if ((q - zf) * s > x) return q - 1.0f;
    return ((q + 1.0f - zf) * s <= x) ? q + 1.0f : q;
}
QS_INLINE float ifix_ce(float q, float x, float zf, float s) {
    if ((q - zf) * s < x) return q + 1.0f;
    return ((q - 1.0f - zf) * s >= x) ? q - 1.0f : q;
}
QS_INLINE float ifix_tz(float q, float x, float zf, float s) {
    return x >= 0.0f ? ifix_fl(q, x, zf, s) : ifix_ce(q, x, zf, s);
}
#define ifix_na ifix_ne

/* ----- rounding of magnitudes t >= 0 of numbers with sign `neg` (float path) ------------------- */
QS_INLINE float mag_ne(float t, int neg) { (void)neg; return nearbyintf(t); }
QS_INLINE float mag_na(float t, int neg) { (void)neg; float r = truncf(t); return r + (t - r >= 0.5f ? 1.0f : 0.0f); }
QS_INLINE float mag_fl(float t, int neg) { return neg ? ceilf(t) : truncf(t); }
QS_INLINE float mag_ce(float t, int neg) { return neg ? truncf(t) : ceilf(t); }
QS_INLINE float mag_tz(float t, int neg) { (void)neg; return truncf(t); }
/* does the mode never increase the magnitude? (IEEE: overflow then gives the largest finite) */
QS_INLINE int down_ne(int neg) { (void)neg; return 0; }
QS_INLINE int down_na(int neg) { (void)neg; return 0; }
QS_INLINE int down_fl(int neg) { return !neg; }
QS_INLINE int down_ce(int neg) { return neg; }
QS_INLINE int down_tz(int neg) { (void)neg; return 1; }

/* round y onto the grid of a float format; overflow: saturate or IEEE/OCP non-saturating */
#define FGRID(NAME, MAG, DOWN)                                                                       \
    QS_INLINE float fgrid_##NAME(float y, const qs_fmt *f) {              \
        const float a = fabsf(y);                                                                    \
        const int neg = (f2u(y) >> 31) != 0;                                                         \
        int32_t e = (int32_t)(f2u(a) >> 23) - 127;                                                   \
        e = e < f->emin ? f->emin : (e > f->emax ? f->emax : e);                                     \
        const float step = pow2i(e - f->man_bits);                                                   \
        /* a / step as two exact multiplications by powers of two (no division; 2^(M-e) may not fit) */  \
        const int32_t k = f->man_bits - e, k1 = k / 2;                                               \
        float q = MAG((a * pow2i(k1)) * pow2i(k - k1), neg) * step;                                  \
        if (q > f->max_value) {                                                                      \
            q = (f->saturate || DOWN(neg)) ? f->max_value : f->special_value;                        \
        }                                                                                            \
        return copysignf(q, y);                                                                      \
    }
FGRID(ne_general, mag_ne, down_ne)

/* Round-to-nearest-even on the bits (same result as fgrid_ne_general, about twice as fast):
 * normal range: round the mantissa to M bits with the integer carry trick; subnormal range: adding
 * C = 2^(emin - M + 23) makes float32's own rounding round to a multiple of 2^(emin - M). */
QS_INLINE float fgrid_ne(float y, const qs_fmt *f) {
    const float a = fabsf(y);
    const uint32_t ab = f2u(a), shift = (uint32_t)(23 - f->man_bits);
    const uint32_t rb = (ab + ((1u << shift) >> 1) - 1u + ((ab >> shift) & 1u)) & ~((1u << shift) - 1u);
    const float c = pow2i(f->emin - f->man_bits + 23);
    const float sub = (a + c) - c;
    float q = a < pow2i(f->emin) ? sub : u2f(rb);
    if (q > f->max_value) q = f->saturate ? f->max_value : f->special_value;
    return copysignf(q, y);
}
FGRID(na, mag_na, down_na)
FGRID(fl, mag_fl, down_fl)
FGRID(ce, mag_ce, down_ce)
FGRID(tz, mag_tz, down_tz)

/* neighbours on the grid of f (saturating at +-max_value) */
QS_INLINE float fnext_up(float q, const qs_fmt *f) {
    if (q >= 0.0f) {
        int32_t e = (int32_t)(f2u(q) >> 23) - 127;
        e = e < f->emin ? f->emin : (e > f->emax ? f->emax : e);
        const float r = q + pow2i(e - f->man_bits);
        return r > f->max_value ? f->max_value : r;
    }
    const float a = -q;
    int32_t e = (int32_t)(f2u(a) >> 23) - 127;
    e = e < f->emin ? f->emin : e;
    const int32_t ge = (a == pow2i(e) && e > f->emin) ? e - 1 : e;
    return -(a - pow2i(ge - f->man_bits));
}
QS_INLINE float fnext_down(float q, const qs_fmt *f) { return -fnext_up(-q, f); }
/* the float version of ifix_*: directed modes exact on the grid of reconstructed values q * s */
QS_INLINE float ffix_ne(float q, float x, float s, const qs_fmt *f) { (void)x; (void)s; (void)f; return q; }
QS_INLINE float ffix_fl(float q, float x, float s, const qs_fmt *f) {
    if (!(fabsf(q) <= FLT_MAX)) return q;
    if (q * s > x) return fnext_down(q, f);
    const float u = fnext_up(q, f);
    return (u * s <= x) ? u : q;
}
QS_INLINE float ffix_ce(float q, float x, float s, const qs_fmt *f) {
    if (!(fabsf(q) <= FLT_MAX)) return q;
    if (q * s < x) return fnext_up(q, f);
    const float d = fnext_down(q, f);
    return (d * s >= x) ? d : q;
}
QS_INLINE float ffix_tz(float q, float x, float s, const qs_fmt *f) {
    return x >= 0.0f ? ffix_fl(q, x, s, f) : ffix_ce(q, x, s, f);
}
#define ffix_na ffix_ne

/* bit pattern of a value already on the grid of f (branch-free so that it vectorizes) */
QS_INLINE uint32_t fencode(float q, const qs_fmt *f) {
    const uint32_t b = f2u(q), sign = b >> 31, ab = b & 0x7fffffffu;
    const float a = u2f(ab);
    const uint32_t normal = (ab >> f->shift) - f->rebias; /* re-bias the exponent */
    const float small = a < f->min_normal ? a : 0.0f;    /* keeps the conversion in range */
    const uint32_t sub = (uint32_t)(int32_t)(small * f->sub_mul);
    uint32_t body = a < f->min_normal ? sub : normal;
    body = ab > 0x7f800000u ? f->nan_code : body;
    body = ab == 0x7f800000u ? f->inf_code : body;
    body = f->is_e8 ? (ab >> f->shift) : body; /* bf16-like: float32's own layout, subnormals included */
    return (sign << (f->exp_bits + f->man_bits)) | body;
}

static qs_fmt make_fmt(const qs_float_format *g, int overflow) {
    qs_fmt f;
    const int E = g->exp_bits, M = g->man_bits;
    const uint32_t top = (1u << E) - 1, mmask = (1u << M) - 1;
    f.exp_bits = E; f.man_bits = M; f.bias = g->bias; f.emin = g->emin; f.emax = g->emax;
    f.saturate = overflow == O_SATURATE;
    f.is_e8 = E == 8;
    f.max_value = g->max_value;
    f.special_value = g->special == 0 ? INFINITY : NAN;
    f.min_normal = pow2i(g->emin);
    f.sub_mul = E == 8 ? 1.0f : pow2i(M - g->emin);
    f.shift = (uint32_t)(23 - M);
    f.rebias = (uint32_t)(127 - g->bias) << M;
    f.nan_code = g->special == 0 ? (top << M) | (1u << (M > 0 ? M - 1 : 0)) : (top << M) | mmask;
    f.inf_code = g->special == 0 ? (top << M) : f.nan_code;
    f.max_code = g->special == 0 ? ((top - 1) << M) | mmask
               : (g->special == 1 ? (top << M) | (mmask - 1) : (top << M) | mmask);
    f.over_code = f.saturate ? f.max_code : f.inf_code;
    return f;
}

/* ----- generic driver: walk a region, calling a run function per stretch sharing parameters ---- */
typedef struct {
    float qmin, qmax;
    int overflow, passthrough;
    const qs_fmt *fmt;
    const float *lut;
    int64_t bad;
} qs_ctx;

typedef void (*run_s_fn)(const void *x, void *out, int64_t off, int64_t n, float s, int32_t z, qs_ctx *c);
typedef void (*run_v_fn)(const void *x, void *out, int64_t off, int64_t n, const float *s, const int32_t *z,
                         qs_ctx *c);

static void drive(const void *x, void *out, const qs_region *r, const float *scale, const int32_t *zp,
                  run_s_fn rs, run_v_fn rv, qs_ctx *c) {
    const int64_t L = r->length, I = r->inner, G = r->group, NG = (L + G - 1) / G, PI = r->p_inner;
    for (int64_t o = r->o_begin; o < r->o_end; ++o) {
        const int64_t pbase = (r->p_outer == 1 ? 0 : o) * NG;
        const int64_t row = o * L * I;
        if (I == 1 && G == 1 && NG > 1 && scale) { /* a parameter per element of the row */
            rv(x, out, row + r->k_begin, r->k_end - r->k_begin, scale + pbase + r->k_begin,
               zp ? zp + pbase + r->k_begin : NULL, c);
        } else if (I == 1) { /* runs of up to G contiguous elements share parameters */
            for (int64_t k = r->k_begin; k < r->k_end;) {
                const int64_t g = k / G, ke = (g + 1) * G < r->k_end ? (g + 1) * G : r->k_end;
                rs(x, out, row + k, ke - k, scale ? scale[pbase + g] : 1.0f, zp ? zp[pbase + g] : 0, c);
                k = ke;
            }
        } else {
            for (int64_t k = r->k_begin; k < r->k_end; ++k) {
                const int64_t g = k / G, p = (pbase + g) * PI;
                if (PI == 1 || !scale) rs(x, out, row + k * I, I, scale ? scale[p] : 1.0f, zp ? zp[p] : 0, c);
                else rv(x, out, row + k * I, I, scale + p, zp ? zp + p : NULL, c);
            }
        }
    }
}

/* ----- integer quantization: runs for every rounding mode x output type ------------------------ */
#define STORE_F32(o, q, zf, s, v) o = (c->passthrough && !finite_f(v)) ? (v) : ((q) - (zf)) * (s)
#define STORE_CODE(o, q, zf, s, v) o = (q)

#define INT_RUNS(RN, ROUND, OT, ON, STORE)                                                            \
    QS_CLONES static void int_s_##RN##_##ON(const void *x_, void *o_, int64_t off, int64_t n, float s,  \
                                            int32_t z, qs_ctx *c) {                                  \
        const float *x = (const float *)x_ + off;                                                    \
        OT *out = (OT *)o_ + off;                                                                    \
        const float inv = 1.0f / s, zf = (float)z, lo = c->qmin, hi = c->qmax;                      \
        int bad = 0; /* any non-finite input? (an OR reduction vectorizes better than a count) */   \
        for (int64_t i = 0; i < n; ++i) {                                                            \
            const float v = x[i];                                                                    \
            const float w = finite_f(v) ? v : 0.0f;                                                  \
            float q = ifix_##RN(ROUND(keep_tiny(w * inv, w)) + zf, w, zf, s);                                    \
            q = q < lo ? lo : q;                                                                     \
            q = q > hi ? hi : q;                                                                     \
            STORE(out[i], q, zf, s, v);                                                              \
            bad |= !finite_f(v);                                                                     \
        }                                                                                            \
        c->bad += bad;                                                                               \
    }                                                                                                \
    QS_CLONES static void int_v_##RN##_##ON(const void *x_, void *o_, int64_t off, int64_t n,         \
                                            const float *sp, const int32_t *zp, qs_ctx *c) {         \
        const float *x = (const float *)x_ + off;                                                    \
        OT *out = (OT *)o_ + off;                                                                    \
        const float lo = c->qmin, hi = c->qmax;                                                      \
        int bad = 0; /* any non-finite input? (an OR reduction vectorizes better than a count) */   \
        for (int64_t i = 0; i < n; ++i) {                                                            \
            const float v = x[i], s = sp[i], inv = 1.0f / s, zf = zp ? (float)zp[i] : 0.0f;          \
            const float w = finite_f(v) ? v : 0.0f;                                                  \
            float q = ifix_##RN(ROUND(keep_tiny(w * inv, w)) + zf, w, zf, s);                                    \
            q = q < lo ? lo : q;                                                                     \
            q = q > hi ? hi : q;                                                                     \
            STORE(out[i], q, zf, s, v);                                                              \
            bad |= !finite_f(v);                                                                     \
        }                                                                                            \
        c->bad += bad;                                                                               \
    }

#define INT_RUNS_ALL_TYPES(RN, ROUND)                          \
    INT_RUNS(RN, ROUND, float, f32, STORE_F32)                 \
    INT_RUNS(RN, ROUND, int8_t, i8, STORE_CODE)                \
    INT_RUNS(RN, ROUND, uint8_t, u8, STORE_CODE)               \
    INT_RUNS(RN, ROUND, int16_t, i16, STORE_CODE)              \
    INT_RUNS(RN, ROUND, int32_t, i32, STORE_CODE)
INT_RUNS_ALL_TYPES(ne, rnd_ne)
INT_RUNS_ALL_TYPES(na, rnd_na)
INT_RUNS_ALL_TYPES(fl, rnd_fl)
INT_RUNS_ALL_TYPES(ce, rnd_ce)
INT_RUNS_ALL_TYPES(tz, rnd_tz)

#define RUN_TABLE_ROW(KIND, RN) {KIND##_##RN##_f32, KIND##_##RN##_i8, KIND##_##RN##_u8, KIND##_##RN##_i16, KIND##_##RN##_i32}
static const run_s_fn INT_S[5][5] = {RUN_TABLE_ROW(int_s, ne), RUN_TABLE_ROW(int_s, na), RUN_TABLE_ROW(int_s, fl),
                                     RUN_TABLE_ROW(int_s, ce), RUN_TABLE_ROW(int_s, tz)};
static const run_v_fn INT_V[5][5] = {RUN_TABLE_ROW(int_v, ne), RUN_TABLE_ROW(int_v, na), RUN_TABLE_ROW(int_v, fl),
                                     RUN_TABLE_ROW(int_v, ce), RUN_TABLE_ROW(int_v, tz)};

/* ----- float-format quantization ---------------------------------------------------------------- */
/* per rounding mode: the grid value of y = x / s, and its code (fused for nearest-even) */
#define FVALUE_FN(RN)                                                                                \
    QS_INLINE float fvalue_##RN(float y, float w, float s, const qs_fmt *f) {                       \
        return ffix_##RN(fgrid_##RN(y, f), w, s, f);                                                 \
    }                                                                                                \
    QS_INLINE uint32_t fcode_##RN(float y, float w, float s, const qs_fmt *f) {                     \
        return fencode(fvalue_##RN(y, w, s, f), f);                                                  \
    }
FVALUE_FN(na)
FVALUE_FN(fl)
FVALUE_FN(ce)
FVALUE_FN(tz)
QS_INLINE float fvalue_ne(float y, float w, float s, const qs_fmt *f) {
    (void)w; (void)s;
    return fgrid_ne(y, f);
}
/* nearest-even straight to the code, identical to fencode(fgrid_ne(y)) but cheaper */
QS_INLINE uint32_t fcode_ne(float y, float w, float s, const qs_fmt *f) {
    (void)w; (void)s;
    const uint32_t b = f2u(y), sign = b >> 31, ab = b & 0x7fffffffu, shift = f->shift;
    const uint32_t rounded = (ab + ((1u << shift) >> 1) - 1u + ((ab >> shift) & 1u)) >> shift;
    const float a = u2f(ab);
    const float small = a < f->min_normal ? a : 0.0f;
    const uint32_t sub = (uint32_t)(int32_t)nearbyintf(small * f->sub_mul);
    uint32_t code = a < f->min_normal ? sub : rounded - f->rebias;
    code = f->is_e8 ? rounded : code; /* float32's layout (subnormals included): the rounded bits */
    code = code > f->max_code ? f->over_code : code;
    return (sign << (f->exp_bits + f->man_bits)) | code;
}

#define FSTORE_F32(RN, o, y, w, s, v)                                                                 \
    do {                                                                                             \
        const float q_ = fvalue_##RN(y, w, s, f) * (s);                                          \
        o = (pt && !finite_f(v)) ? (v) : q_;                                                         \
    } while (0)
#define FSTORE_U8(RN, o, y, w, s, v) o = (uint8_t)fcode_##RN(y, w, s, f)
#define FSTORE_I16(RN, o, y, w, s, v) o = (int16_t)(uint16_t)fcode_##RN(y, w, s, f)

#define FLOAT_RUNS(RN, OT, ON, STORE)                                                                 \
    QS_CLONES static void flt_s_##RN##_##ON(const void *x_, void *o_, int64_t off, int64_t n, float s,  \
                                            int32_t z, qs_ctx *c) {                                  \
        (void)z;                                                                                     \
        const float *x = (const float *)x_ + off;                                                    \
        OT *out = (OT *)o_ + off;                                                                    \
        const qs_fmt fmt_ = *c->fmt, *f = &fmt_; /* local copy: byte stores cannot alias it */       \
        const float inv = 1.0f / s;                                                                  \
        const int pt = c->passthrough; (void)pt;                                                     \
        int bad = 0; /* any non-finite input? (an OR reduction vectorizes better than a count) */   \
        for (int64_t i = 0; i < n; ++i) {                                                            \
            const float v = x[i];                                                                    \
            const float w = finite_f(v) ? v : 0.0f;                                                  \
            const float y = keep_tiny(w * inv, w);                                                   \
            STORE(RN, out[i], y, w, s, v);                                                           \
            bad |= !finite_f(v);                                                                     \
        }                                                                                            \
        c->bad += bad;                                                                               \
    }                                                                                                \
    QS_CLONES static void flt_v_##RN##_##ON(const void *x_, void *o_, int64_t off, int64_t n,         \
                                            const float *sp, const int32_t *zp, qs_ctx *c) {         \
        (void)zp;                                                                                    \
        const float *x = (const float *)x_ + off;                                                    \
        OT *out = (OT *)o_ + off;                                                                    \
        const qs_fmt fmt_ = *c->fmt, *f = &fmt_; /* local copy: byte stores cannot alias it */       \
        const int pt = c->passthrough; (void)pt;                                                     \
        int bad = 0; /* any non-finite input? (an OR reduction vectorizes better than a count) */   \
        for (int64_t i = 0; i < n; ++i) {                                                            \
            const float v = x[i], s = sp[i];                                                         \
            const float w = finite_f(v) ? v : 0.0f;                                                  \
            const float y = keep_tiny(w * (1.0f / s), w);                                            \
            STORE(RN, out[i], y, w, s, v);                                                           \
            bad |= !finite_f(v);                                                                     \
        }                                                                                            \
        c->bad += bad;                                                                               \
    }

#define FLOAT_RUNS_ALL_TYPES(RN)                   \
    FLOAT_RUNS(RN, float, f32, FSTORE_F32)         \
    FLOAT_RUNS(RN, uint8_t, u8, FSTORE_U8)         \
    FLOAT_RUNS(RN, int16_t, i16, FSTORE_I16)
FLOAT_RUNS_ALL_TYPES(ne)
FLOAT_RUNS_ALL_TYPES(na)
FLOAT_RUNS_ALL_TYPES(fl)
FLOAT_RUNS_ALL_TYPES(ce)
FLOAT_RUNS_ALL_TYPES(tz)

#define FRUN_ROW(KIND, RN) {KIND##_##RN##_f32, NULL, KIND##_##RN##_u8, KIND##_##RN##_i16, NULL}
static const run_s_fn FLT_S[5][5] = {FRUN_ROW(flt_s, ne), FRUN_ROW(flt_s, na), FRUN_ROW(flt_s, fl),
                                     FRUN_ROW(flt_s, ce), FRUN_ROW(flt_s, tz)};
static const run_v_fn FLT_V[5][5] = {FRUN_ROW(flt_v, ne), FRUN_ROW(flt_v, na), FRUN_ROW(flt_v, fl),
                                     FRUN_ROW(flt_v, ce), FRUN_ROW(flt_v, tz)};

/* ----- dequantization of codes ---------------------------------------------------------------- */
#define DEQ_INT_RUNS(CT, CN)                                                                          \
    QS_CLONES static void dq_s_##CN(const void *x_, void *o_, int64_t off, int64_t n, float s, int32_t z, \
                                    qs_ctx *c) {                                                     \
        (void)c;                                                                                     \
        const CT *q = (const CT *)x_ + off;                                                          \
        float *out = (float *)o_ + off;                                                              \
        const float zf = (float)z;                                                                   \
        for (int64_t i = 0; i < n; ++i) out[i] = ((float)q[i] - zf) * s;                             \
    }                                                                                                \
    QS_CLONES static void dq_v_##CN(const void *x_, void *o_, int64_t off, int64_t n, const float *sp,  \
                                    const int32_t *zp, qs_ctx *c) {                                  \
        (void)c;                                                                                     \
        const CT *q = (const CT *)x_ + off;                                                          \
        float *out = (float *)o_ + off;                                                              \
        for (int64_t i = 0; i < n; ++i) out[i] = ((float)q[i] - (zp ? (float)zp[i] : 0.0f)) * sp[i]; \
    }
DEQ_INT_RUNS(int8_t, i8)
DEQ_INT_RUNS(uint8_t, u8)
DEQ_INT_RUNS(int16_t, i16)
DEQ_INT_RUNS(int32_t, i32)

/* table dequantization (float formats and codebooks): out = lut[code] * s */
#define DEQ_LUT_RUNS(CT, CN, MASK)                                                                    \
    QS_CLONES static void dl_s_##CN(const void *x_, void *o_, int64_t off, int64_t n, float s, int32_t z, \
                                    qs_ctx *c) {                                                     \
        (void)z;                                                                                     \
        const CT *q = (const CT *)x_ + off;                                                          \
        float *out = (float *)o_ + off;                                                              \
        const float *lut = c->lut;                                                                   \
        for (int64_t i = 0; i < n; ++i) out[i] = lut[(uint32_t)q[i] & MASK] * s;                     \
    }                                                                                                \
    QS_CLONES static void dl_v_##CN(const void *x_, void *o_, int64_t off, int64_t n, const float *sp,  \
                                    const int32_t *zp, qs_ctx *c) {                                  \
        (void)zp;                                                                                    \
        const CT *q = (const CT *)x_ + off;                                                          \
        float *out = (float *)o_ + off;                                                              \
        const float *lut = c->lut;                                                                   \
        for (int64_t i = 0; i < n; ++i) out[i] = lut[(uint32_t)q[i] & MASK] * sp[i];                 \
    }
DEQ_LUT_RUNS(uint8_t, u8, 0xffu)
DEQ_LUT_RUNS(int16_t, i16, 0xffffu)
DEQ_LUT_RUNS(int32_t, i32, 0xffffu)

/* ----- squared quantization error of candidate ranges (the MSE range search) ------------------- */
/* sum_i (x_i - Q(x_i))^2 over one group's n values for one (scale, zero point), with the int path's
 * arithmetic; 16 float partial sums (vectorizable), flushed to double every 1024 values. */
#define INT_SQERR(RN, ROUND)                                                                          \
    QS_CLONES static double int_sqerr_##RN(const float *x, int64_t n, float s, int32_t z, float lo,   \
                                           float hi) {                                               \
        const float inv = 1.0f / s, zf = (float)z;                                                    \
        double total = 0.0;                                                                           \
        for (int64_t b = 0; b < n; b += 1024) {                                                       \
            const int64_t e = b + 1024 < n ? b + 1024 : n;                                            \
            float part[16] = {0};                                                                     \
            int64_t i = b;                                                                            \
            for (; i + 16 <= e; i += 16) {                                                            \
                for (int j = 0; j < 16; ++j) {                                                        \
                    const float w = x[i + j];                                                         \
                    float q = ifix_##RN(ROUND(keep_tiny(w * inv, w)) + zf, w, zf, s);                 \
                    q = q < lo ? lo : q;                                                              \
                    q = q > hi ? hi : q;                                                              \
                    const float d = w - (q - zf) * s;                                                 \
                    part[j] += d * d;                                                                 \
                }                                                                                     \
            }                                                                                         \
            for (; i < e; ++i) {                                                                      \
                const float w = x[i];                                                                 \
                float q = ifix_##RN(ROUND(keep_tiny(w * inv, w)) + zf, w, zf, s);                     \
                q = q < lo ? lo : q;                                                                  \
                q = q > hi ? hi : q;                                                                  \
                const float d = w - (q - zf) * s;                                                     \
                part[0] += d * d;                                                                     \
            }                                                                                         \
            for (int j = 0; j < 16; ++j) total += part[j];                                            \
        }                                                                                             \
        return total;                                                                                 \
    }
INT_SQERR(ne, rnd_ne)
INT_SQERR(na, rnd_na)
INT_SQERR(fl, rnd_fl)
INT_SQERR(ce, rnd_ce)
INT_SQERR(tz, rnd_tz)
typedef double (*sqerr_fn)(const float *x, int64_t n, float s, int32_t z, float lo, float hi);
static const sqerr_fn INT_SQERR_FN[5] = {int_sqerr_ne, int_sqerr_na, int_sqerr_fl, int_sqerr_ce, int_sqerr_tz};

/* ----- exported entry points ------------------------------------------------------------------ */
static int valid_rounding(int rounding) { return rounding >= 0 && rounding < 5; }

int64_t qs_int_quant(const float *x, void *out, int out_type, const qs_region *r, const float *scale,
                     const int32_t *zp, float qmin, float qmax, int rounding, int passthrough) {
    if (!valid_rounding(rounding) || out_type < 0 || out_type > 4) return -1;
    qs_ctx c = {qmin, qmax, O_SATURATE, passthrough, NULL, NULL, 0};
    drive(x, out, r, scale, zp, INT_S[rounding][out_type], INT_V[rounding][out_type], &c);
    return c.bad;
}

int64_t qs_float_quant(const float *x, void *out, int out_type, const qs_region *r, const float *scale,
                       const qs_float_format *f, int rounding, int overflow, int passthrough) {
    if (!valid_rounding(rounding) || !(out_type == C_F32 || out_type == C_U8 || out_type == C_I16)) return -1;
    const qs_fmt fm = make_fmt(f, overflow);
    qs_ctx c = {0, 0, overflow, passthrough, &fm, NULL, 0};
    drive(x, out, r, scale, NULL, FLT_S[rounding][out_type], FLT_V[rounding][out_type], &c);
    return c.bad;
}

int64_t qs_int_dequant(const void *codes, int code_type, float *out, const qs_region *r, const float *scale,
                       const int32_t *zp) {
    static const run_s_fn S[5] = {NULL, dq_s_i8, dq_s_u8, dq_s_i16, dq_s_i32};
    static const run_v_fn V[5] = {NULL, dq_v_i8, dq_v_u8, dq_v_i16, dq_v_i32};
    if (code_type < 1 || code_type > 4) return -1;
    qs_ctx c = {0, 0, 0, 0, NULL, NULL, 0};
    drive(codes, out, r, scale, zp, S[code_type], V[code_type], &c);
    return 0;
}

int64_t qs_lut_dequant(const void *codes, int code_type, float *out, const qs_region *r, const float *scale,
                       const float *lut) {
    static const run_s_fn S[5] = {NULL, NULL, dl_s_u8, dl_s_i16, dl_s_i32};
    static const run_v_fn V[5] = {NULL, NULL, dl_v_u8, dl_v_i16, dl_v_i32};
    if (code_type < 2 || code_type > 4) return -1;
    qs_ctx c = {0, 0, 0, 0, NULL, lut, 0};
    drive(codes, out, r, scale, NULL, S[code_type], V[code_type], &c);
    return 0;
}

/* ----- MX: per block, find amax, derive the E8M0 scale, quantize the block (one pass over memory) */
/* one block: element values (x / s rounded, in units of s) */
#define MX_INT_ELEM_FN(RN, ROUND)                                                                     \
    QS_INLINE float mxint_##RN(float y, float inv_unit, float emax) {                            \
        const float q = ROUND(y * inv_unit) + 0.0f; /* +0.0f: no negative zero, as the int path */   \
        return q < -emax ? -emax : (q > emax ? emax : q);                                            \
    }
MX_INT_ELEM_FN(ne, rnd_ne)
MX_INT_ELEM_FN(na, rnd_na)
MX_INT_ELEM_FN(fl, rnd_fl)
MX_INT_ELEM_FN(ce, rnd_ce)
MX_INT_ELEM_FN(tz, rnd_tz)

/* One MX block of n elements: find amax, derive the shared exponent, write values and/or codes.
 * Inlined with n == block size as a constant for full blocks, so the loops compile to straight
 * vector code without per-block trip-count and aliasing checks. Returns the non-finite flag. */
#define MX_BLOCK(RN)                                                                                  \
    QS_INLINE int mx_block_##RN(const float *restrict xb, float *restrict ob, int8_t *restrict ci,    \
                                uint8_t *restrict cf, uint8_t *restrict sc, int64_t n, const qs_fmt *f, \
                                int int_elem, int32_t emax_elem, float unit, float inv_unit,         \
                                float elem_max, int passthrough) {                                   \
        uint32_t amax_bits = 0; /* amax over finite values as an integer max of magnitude bits */    \
        int nb = 0;                                                                                  \
        for (int64_t i = 0; i < n; ++i) {                                                            \
            const uint32_t u = f2u(xb[i]) & 0x7fffffffu;                                             \
            const int fin = u < 0x7f800000u;                                                         \
            const uint32_t m = fin ? u : 0u;                                                         \
            amax_bits = m > amax_bits ? m : amax_bits;                                               \
            nb |= !fin;                                                                              \
        }                                                                                            \
        const float amax = u2f(amax_bits);                                                           \
        int32_t e = amax_bits ? (int32_t)(amax_bits >> 23) - 127 - emax_elem : -127;                 \
        if (amax_bits && amax < FLT_MIN) e = ilogbf(amax) - emax_elem;                               \
        e = e < -127 ? -127 : (e > 127 ? 127 : e);                                                   \
        const float s = pow2i(e), inv_s = pow2i(-e); /* x * 2^-e rounds exactly like x / 2^e */      \
        if (sc) *sc = (uint8_t)(e + 127);                                                            \
        if (int_elem) {                                                                              \
            if (ob) for (int64_t i = 0; i < n; ++i) {                                                \
                const float v = xb[i], w = finite_f(v) ? v : 0.0f;                                   \
                const float q = mxint_##RN(keep_tiny(w * inv_s, w), inv_unit, elem_max);             \
                ob[i] = (passthrough && !finite_f(v)) ? v : (q * unit) * s;                          \
            }                                                                                        \
            if (ci) for (int64_t i = 0; i < n; ++i) {                                                \
                const float v = xb[i], w = finite_f(v) ? v : 0.0f;                                   \
                ci[i] = (int8_t)mxint_##RN(keep_tiny(w * inv_s, w), inv_unit, elem_max);             \
            }                                                                                        \
        } else {                                                                                     \
            if (ob) for (int64_t i = 0; i < n; ++i) {                                                \
                const float v = xb[i], w = finite_f(v) ? v : 0.0f;                                   \
                const float q = fgrid_##RN(keep_tiny(w * inv_s, w), f);                              \
                ob[i] = (passthrough && !finite_f(v)) ? v : q * s;                                   \
            }                                                                                        \
            if (cf) for (int64_t i = 0; i < n; ++i) {                                                \
                const float v = xb[i], w = finite_f(v) ? v : 0.0f, y = keep_tiny(w * inv_s, w);      \
                cf[i] = (uint8_t)fcode_##RN(y, y, 1.0f, f);                                          \
            }                                                                                        \
        }                                                                                            \
        return nb;                                                                                   \
    }

#define MX_RUNS(RN, ROUND)                                                                            \
    MX_BLOCK(RN)                                                                                     \
    QS_CLONES static int64_t mx_##RN(const float *x, float *out, void *codes, uint8_t *scodes,        \
                                     const qs_region *r, const qs_float_format *fp, int int_elem,    \
                                     int32_t emax_elem, int32_t step_exp, float elem_max, int passthrough) { \
        const qs_fmt fmt_ = make_fmt(fp, O_SATURATE), *f = &fmt_;                                    \
        const int64_t L = r->length, G = r->group, NG = (L + G - 1) / G;                             \
        const float unit = pow2i(step_exp), inv_unit = pow2i(-step_exp);                             \
        int64_t bad = 0;                                                                             \
        for (int64_t o = r->o_begin; o < r->o_end; ++o) {                                            \
            for (int64_t k = r->k_begin; k < r->k_end;) {                                            \
                const int64_t g = k / G, ks = g * G, ke = ks + G < L ? ks + G : L, n = ke - ks;      \
                const int64_t at = o * L + ks;                                                       \
                float *ob = out ? out + at : NULL;                                                   \
                int8_t *ci = (codes && int_elem) ? (int8_t *)codes + at : NULL;                      \
                uint8_t *cf = (codes && !int_elem) ? (uint8_t *)codes + at : NULL;                   \
                uint8_t *sc = scodes ? scodes + o * NG + g : NULL;                                   \
                if (n == 32)                                                                         \
                    bad += mx_block_##RN(x + at, ob, ci, cf, sc, 32, f, int_elem, emax_elem, unit,   \
                                         inv_unit, elem_max, passthrough);                           \
                else                                                                                 \
                    bad += mx_block_##RN(x + at, ob, ci, cf, sc, n, f, int_elem, emax_elem, unit,    \
                                         inv_unit, elem_max, passthrough);                           \
                k = ke;                                                                              \
            }                                                                                        \
        }                                                                                            \
        return bad;                                                                                  \
    }
MX_RUNS(ne, rnd_ne)
MX_RUNS(na, rnd_na)
MX_RUNS(fl, rnd_fl)
MX_RUNS(ce, rnd_ce)
MX_RUNS(tz, rnd_tz)

int64_t qs_mx_quant(const float *x, float *out, void *codes, uint8_t *scale_codes, const qs_region *r,
                    const qs_float_format *f, int int_elem, int32_t emax_elem, int32_t step_exp, float elem_max,
                    int rounding, int passthrough) {
    if (r->inner != 1) return -1;
    switch (rounding) {
        case R_NEAREST_EVEN: return mx_ne(x, out, codes, scale_codes, r, f, int_elem, emax_elem, step_exp, elem_max, passthrough);
        case R_NEAREST_AWAY: return mx_na(x, out, codes, scale_codes, r, f, int_elem, emax_elem, step_exp, elem_max, passthrough);
        case R_FLOOR: return mx_fl(x, out, codes, scale_codes, r, f, int_elem, emax_elem, step_exp, elem_max, passthrough);
        case R_CEIL: return mx_ce(x, out, codes, scale_codes, r, f, int_elem, emax_elem, step_exp, elem_max, passthrough);
        case R_TOWARD_ZERO: return mx_tz(x, out, codes, scale_codes, r, f, int_elem, emax_elem, step_exp, elem_max, passthrough);
        default: return -1;
    }
}

/* out[t * P + p] = sum over row p of x (P rows of n finite values) of the squared error of the int format with
 * scale[t * P + p] and zero point zp[t * P + p] (zp may be NULL), for candidates t in [t_begin, t_end). */
int64_t qs_int_sq_err(const float *x, int64_t P, int64_t n, const float *scale, const int32_t *zp, int64_t t_begin,
                      int64_t t_end, float qmin, float qmax, int rounding, double *out) {
    if (!valid_rounding(rounding)) return -1;
    const sqerr_fn f = INT_SQERR_FN[rounding];
    for (int64_t t = t_begin; t < t_end; ++t)
        for (int64_t p = 0; p < P; ++p) {
            const int64_t k = t * P + p;
            out[k] = f(x + p * n, n, scale[k], zp ? zp[k] : 0, qmin, qmax);
        }
    return 0;
}

/* Histogram counts of the sketch (calibrate/sketch.py): row p of x (P rows of n values, row stride
 * ld) adds one count to bin floor(x * scale[p]) + bins/2 of counts[p * bins ...], columns [c_begin,
 * c_end). scale[p] = bins / (2R) is a power of two with |x| < R, so the product is exact and the bin
 * in range; a negative value whose product underflows to -0/0 goes to bin -1 + bins/2 (as the torch
 * path). NaN is skipped; the return value is how many were. One pass, no intermediate tensor. */
static inline int64_t hist_bin(float v, float s, int64_t half, int64_t bins) {
    const float lim = (float)(half + 1);  /* |t| < bins/2 by construction; the clamp keeps the cast defined */
    const float t = v * s;
    const float tc = t < -lim ? -lim : (t > lim ? lim : t);
    const int32_t tr = (int32_t)tc;  /* truncation, then one step down for negative fractions: floor */
    int64_t k = (int64_t)(tr - ((float)tr > tc)) + half;
    if (t == 0.0f && v < 0.0f) k = half - 1;
    return k < 0 ? 0 : (k >= bins ? bins - 1 : k);
}

int64_t qs_hist_count(const float *x, int64_t P, int64_t ld, int64_t c_begin, int64_t c_end, const float *scale,
                      int64_t bins, int64_t *counts) {
    /* four interleaved sub-histograms: runs of equal bins would otherwise serialize on one counter */
    int64_t *sub = (int64_t *)calloc((size_t)(4 * bins), sizeof(int64_t));
    if (!sub) return -1;
    int64_t skipped = 0;
    const int64_t half = bins / 2;
    for (int64_t p = 0; p < P; ++p) {
        const float *row = x + p * ld;
        const float s = scale[p];
        int64_t i = c_begin;
        for (; i + 4 <= c_end; i += 4) {
            const float v0 = row[i], v1 = row[i + 1], v2 = row[i + 2], v3 = row[i + 3];
            if (v0 != v0 || v1 != v1 || v2 != v2 || v3 != v3) {
                for (int j = 0; j < 4; ++j) {
                    const float v = row[i + j];
                    if (v != v) ++skipped;
                    else ++sub[j * bins + hist_bin(v, s, half, bins)];
                }
                continue;
            }
            ++sub[hist_bin(v0, s, half, bins)];
            ++sub[bins + hist_bin(v1, s, half, bins)];
            ++sub[2 * bins + hist_bin(v2, s, half, bins)];
            ++sub[3 * bins + hist_bin(v3, s, half, bins)];
        }
        for (; i < c_end; ++i) {
            const float v = row[i];
            if (v != v) ++skipped;
            else ++sub[hist_bin(v, s, half, bins)];
        }
        int64_t *c = counts + p * bins;
        for (int64_t k = 0; k < bins; ++k) {
            c[k] += sub[k] + sub[bins + k] + sub[2 * bins + k] + sub[3 * bins + k];
            sub[k] = sub[bins + k] = sub[2 * bins + k] = sub[3 * bins + k] = 0;
        }
    }
    free(sub);
    return skipped;
}

/* Nearest centroid of points [i0, i1) of X (rows of d floats) among k centroids given as
 * CT = -2·Cᵀ (d x kpad, zero padded to a multiple of 16) and cn = ||c||² (kpad, +inf padded):
 * lab[i] = argmin_c cn[c] + Σ_j CT[j][c]·x[j] (lowest index among exact ties) and
 * dist[i] = max(0, that minimum + xn[i]). Sixteen centroids per vector register and four points per
 * pass, so no distance matrix is ever written (k-means on the small sub-spaces of product
 * quantization, where a matrix product with an inner dimension of 4-32 is memory bound). GCC/Clang
 * vector extensions; elsewhere it returns -1 and the caller takes the matrix-product path. */
#if defined(__GNUC__)
typedef float qs_v16f __attribute__((vector_size(64)));
typedef int32_t qs_v16i __attribute__((vector_size(64)));
#define QS_NC_POINTS 4

QS_CLONES int64_t qs_nearest_centroid(const float *X, int64_t d, const float *CT, const float *cn, int64_t kpad,
                                      const float *xn, int64_t i0, int64_t i1, int64_t *lab, float *dist) {
    const qs_v16i iota = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    for (int64_t i = i0; i < i1; i += QS_NC_POINTS) {
        const int64_t np = (i1 - i) < QS_NC_POINTS ? (i1 - i) : QS_NC_POINTS;
        const float *xr[QS_NC_POINTS];
        for (int p = 0; p < QS_NC_POINTS; ++p) xr[p] = X + (i + (p < np ? p : 0)) * d;
        qs_v16f best[QS_NC_POINTS];
        qs_v16i bi[QS_NC_POINTS];
        for (int p = 0; p < QS_NC_POINTS; ++p) {
            best[p] = (qs_v16f){0} + INFINITY;
            bi[p] = (qs_v16i){0};
        }
        for (int64_t c0 = 0; c0 < kpad; c0 += 16) {
            qs_v16f c, acc[QS_NC_POINTS];
            memcpy(&c, cn + c0, sizeof c);
            for (int p = 0; p < QS_NC_POINTS; ++p) acc[p] = c;
            for (int64_t j = 0; j < d; ++j) {
                qs_v16f ct;
                memcpy(&ct, CT + j * kpad + c0, sizeof ct);
                for (int p = 0; p < QS_NC_POINTS; ++p) acc[p] += xr[p][j] * ct;
            }
            const qs_v16i idx = iota + (int32_t)c0;
            for (int p = 0; p < QS_NC_POINTS; ++p) {
                const qs_v16i m = acc[p] < best[p];
                best[p] = (qs_v16f)(((qs_v16i)acc[p] & m) | ((qs_v16i)best[p] & ~m));
                bi[p] = (idx & m) | (bi[p] & ~m);
            }
        }
        for (int p = 0; p < np; ++p) {
            float b = best[p][0];
            int32_t id = bi[p][0];
            for (int l = 1; l < 16; ++l)
                if (best[p][l] < b || (best[p][l] == b && bi[p][l] < id)) {
                    b = best[p][l];
                    id = bi[p][l];
                }
            lab[i + p] = id;
            const float dd = b + xn[i + p];
            dist[i + p] = dd > 0.0f ? dd : 0.0f;
        }
    }
    return 0;
}
#else
int64_t qs_nearest_centroid(const float *X, int64_t d, const float *CT, const float *cn, int64_t kpad,
                            const float *xn, int64_t i0, int64_t i1, int64_t *lab, float *dist) {
    (void)X; (void)d; (void)CT; (void)cn; (void)kpad; (void)xn; (void)i0; (void)i1; (void)lab; (void)dist;
    return -1;
}
#endif

int qs_abi_version(void) { return 1; }

/* A real (empty) extension module so the shared library builds and imports like any other. */
static struct PyModuleDef qs_module = {PyModuleDef_HEAD_INIT, "_kernels",
                                       "quantscope fused CPU kernels (called through ctypes)", -1, NULL};
PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&qs_module); }
