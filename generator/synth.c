/* avgen synth: synthetic UCF101-shaped data sets (AVI: MPEG-4 video + MP3 audio) written through
 * libavformat/libavcodec. The layout, the content design, the barcode and the marker are described in
 * synth.h. Everything is deterministic for a seed: each clip draws its parameters from generators
 * seeded by (seed, class, group, clip, purpose), and the encoders and the muxer run bit-exact. */
#include "synth.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/mathematics.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

#define SYNTH_ERR_LEN 1024

/* ------------------------------------------------------------------------------------------ random */

static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

typedef struct { uint64_t s; } rng_t;

static rng_t rng_make(uint64_t seed, int a, int b, int c, int purpose) {
    uint64_t h = mix64(seed);
    h = mix64(h ^ (uint64_t)(unsigned)a);
    h = mix64(h ^ ((uint64_t)(unsigned)b << 20));
    h = mix64(h ^ ((uint64_t)(unsigned)c << 40));
    h = mix64(h ^ ((uint64_t)(unsigned)purpose * 0x5851f42d4c957f2dULL));
    return (rng_t){h};
}

static uint64_t rng_next(rng_t *r) {
    r->s += 0x9e3779b97f4a7c15ULL;
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) */
static double rng_unif(rng_t *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }
static double rng_range(rng_t *r, double lo, double hi) { return lo + (hi - lo) * rng_unif(r); }
static int rng_int(rng_t *r, int n) { return (int)(rng_unif(r) * n); }

/* ------------------------------------------------------------------------------------------ naming */

static const char *const class_names[] = {
    "ArmSwing",   "HandstandHops", "HulaHoop",    "IceSkating",   "JumpRope",   "KiteFlying",    "LeafBlowing",
    "MopFloor",   "NunchuckSpin",  "OarRowing",   "PaperFolding", "QuillWriting", "RopeClimb",   "SkipStone",
    "TopSpinning", "UnicycleRide", "VaseTurning", "WindChimes",   "XylophonePlay", "YoYo",       "ZipLine",
};
#define N_FIXED_NAMES ((int)(sizeof class_names / sizeof class_names[0]))

static void class_folder(int c, char *buf, size_t n) {
    if (c < N_FIXED_NAMES) snprintf(buf, n, "%s", class_names[c]);
    else snprintf(buf, n, "ZzSynth%03d", c + 1);
}

/* The file-name stem: differs from the folder in letter case for class 1, as UCF101's
 * HandstandPushups/v_HandStandPushups_... does. */
static void class_stem(int c, char *buf, size_t n) {
    if (c == 1) snprintf(buf, n, "HandStandHops");
    else class_folder(c, buf, n);
}

/* ----------------------------------------------------------------------------------- clip content */

typedef struct {
    int kind;        /* 0 linear drift with wrap-around, 1 circular orbit, 2 oscillation along an axis */
    double angle;    /* drift direction or oscillation axis (radians) */
    double speed;    /* drift speed, px/s */
    double omega;    /* orbit angular speed, rad/s (signed: turn sense) */
    double freq;     /* oscillation frequency, Hz */
    double radius;   /* orbit radius or oscillation amplitude, px */
    double x0, y0;   /* start position (drift) or centre (orbit, oscillation) */
    double phase;
} motion_t;

typedef struct {
    int shape;       /* 0 disc, 1 square, 2 diamond, 3 ring, 4 triangle */
    double r;        /* size, px */
    double rot;      /* rotation, radians */
    uint8_t y, u, v;
    motion_t m;
} sprite_t;

typedef struct {
    double c0[3], c1[3];  /* background colours (RGB 0..255) */
    int pattern;          /* 0 gradient, 1 stripes, 2 checker, 3 blobs */
    double angle, period, phase;
    double blob[3][3];    /* x, y, sigma as fractions of the frame */
    double dx, dy;        /* per-clip framing offset, px */
    double bright;        /* per-clip luma offset */
    int nsprites;
    sprite_t spr[2];
} scene_t;

typedef struct {
    double f0, amp, harm;
    double trem_rate, trem_depth, trem_phase;
    double vib_rate, vib_depth;
    double noise, noise_lp;
    double gain_l, gain_r;
    uint64_t noise_seed;
} sound_t;

typedef struct {
    int width, height;
    AVRational fps;
    int n_frames;
    int sample_rate;      /* 0: no audio stream */
    int silent;
    int barcode;
    double burst_s;       /* < 0: none */
    scene_t scene;
    sound_t sound;
} clip_t;

static void rgb_to_yuv(const double *rgb, double *y, double *u, double *v) {
    double r = rgb[0], g = rgb[1], b = rgb[2];
    *y = 16.0 + 0.256788 * r + 0.504129 * g + 0.097906 * b;
    *u = 128.0 - 0.148223 * r - 0.290993 * g + 0.439216 * b;
    *v = 128.0 + 0.439216 * r - 0.367788 * g - 0.071427 * b;
}

static uint8_t clamp_u8(double x) {
    if (x <= 0) return 0;
    if (x >= 255) return 255;
    return (uint8_t)lrint(x);
}

static double luma_of(const double *rgb) { return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]; }

/* Shape colour contrasting with a background of luma bg_y (retries, then black or white). */
static void pick_shape_colour(rng_t *r, double bg_y, double *rgb) {
    for (int t = 0; t < 24; t++) {
        for (int k = 0; k < 3; k++) rgb[k] = rng_range(r, 0, 255);
        int hi = rng_int(r, 3);
        rgb[hi] = rng_range(r, 200, 255); /* saturated-ish */
        if (fabs(luma_of(rgb) - bg_y) > 60) return;
    }
    double v = bg_y > 128 ? 10 : 245;
    rgb[0] = rgb[1] = rgb[2] = v;
}

/* Motion whose kind and parameter u in (0, 1) are given; `turn` picks the orbit sense. Per-clip
 * randomness (start, phase, +-8% speed) comes from r. */
static void make_motion(motion_t *m, int kind, double u, int turn, rng_t *r, int W, int H, double size) {
    double base = W < H ? W : H;
    double jit = rng_range(r, 0.92, 1.08);
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->phase = rng_range(r, 0, 2 * M_PI);
    if (kind == 0) {
        m->angle = 2 * M_PI * u;
        m->speed = 0.45 * base * jit;
        m->x0 = rng_range(r, 0, W);
        m->y0 = rng_range(r, 0, H);
    } else {
        m->radius = (kind == 1 ? 0.28 : 0.30) * base;
        double mx = m->radius + size, my = m->radius + size;
        m->x0 = mx < W - mx ? rng_range(r, mx, W - mx) : W / 2.0;
        m->y0 = my < H - my ? rng_range(r, my, H - my) : H / 2.0;
        if (kind == 1) m->omega = (turn ? -1 : 1) * 2 * M_PI * (0.5 + u) * jit;
        else {
            m->angle = M_PI * u;
            m->freq = (0.6 + 1.2 * u) * jit;
        }
    }
}

static void motion_pos(const motion_t *m, double t, int W, int H, double size, double *x, double *y) {
    if (m->kind == 0) {
        double span_x = W + 2 * size, span_y = H + 2 * size;
        double px = fmod(m->x0 + size + m->speed * cos(m->angle) * t, span_x);
        double py = fmod(m->y0 + size + m->speed * sin(m->angle) * t, span_y);
        if (px < 0) px += span_x;
        if (py < 0) py += span_y;
        *x = px - size;
        *y = py - size;
    } else if (m->kind == 1) {
        double a = m->phase + m->omega * t;
        *x = m->x0 + m->radius * cos(a);
        *y = m->y0 + m->radius * sin(a);
    } else {
        double s = m->radius * sin(m->phase + 2 * M_PI * m->freq * t);
        *x = m->x0 + s * cos(m->angle);
        *y = m->y0 + s * sin(m->angle);
    }
}

enum { CUE_AUDIO = 0, CUE_VIDEO = 1, CUE_BOTH = 2 };
static const char *const cue_names[] = {"audio", "video", "both"};

/* The group's look: background and shape style (drawn independently of the class). */
static void make_group_style(scene_t *s, rng_t *r) {
    memset(s, 0, sizeof *s);
    for (int k = 0; k < 3; k++) s->c0[k] = rng_range(r, 30, 210);
    for (int k = 0; k < 3; k++) {
        double c = s->c0[k] + rng_range(r, -70, 70);
        s->c1[k] = c < 0 ? 0 : c > 255 ? 255 : c;
    }
    s->pattern = rng_int(r, 4);
    s->angle = rng_range(r, 0, 2 * M_PI);
    s->period = rng_range(r, 0.12, 0.5);
    s->phase = rng_range(r, 0, 2 * M_PI);
    for (int b = 0; b < 3; b++) {
        s->blob[b][0] = rng_unif(r);
        s->blob[b][1] = rng_unif(r);
        s->blob[b][2] = rng_range(r, 0.08, 0.3);
    }
    double bg[3];
    for (int k = 0; k < 3; k++) bg[k] = 0.5 * (s->c0[k] + s->c1[k]);
    s->nsprites = 1 + (rng_unif(r) < 0.5);
    for (int i = 0; i < s->nsprites; i++) {
        sprite_t *p = &s->spr[i];
        double rgb[3], y, u, v;
        p->shape = rng_int(r, 5);
        p->r = rng_range(r, 0.09, 0.14) * (i ? 0.55 : 1.0); /* fraction of min(W, H) for now */
        p->rot = rng_range(r, 0, 2 * M_PI);
        pick_shape_colour(r, luma_of(bg), rgb);
        rgb_to_yuv(rgb, &y, &u, &v);
        p->y = clamp_u8(y), p->u = clamp_u8(u), p->v = clamp_u8(v);
    }
}

/* Per-clip variation of the group's look and the motions. Class-driven motion when cls >= 0. */
static void make_clip_scene(scene_t *s, rng_t *r, int W, int H, int cls, int K) {
    double base = W < H ? W : H;
    s->dx = rng_range(r, -0.04, 0.04) * base;
    s->dy = rng_range(r, -0.04, 0.04) * base;
    s->bright = rng_range(r, -12, 12);
    for (int i = 0; i < s->nsprites; i++) {
        sprite_t *p = &s->spr[i];
        p->r = p->r * base * rng_range(r, 0.9, 1.1);
        if (p->r < 1.5) p->r = 1.5;
        p->rot += rng_range(r, -0.3, 0.3);
        if (i == 0 && cls >= 0) {
            int kind = cls % 3, idx = cls / 3;
            int nk = (K - kind + 2) / 3; /* classes of this kind among 0..K-1 */
            double u = (idx + 0.5) / (nk > 0 ? nk : 1);
            make_motion(&p->m, kind, u, idx % 2 == 0, r, W, H, p->r);
        } else if (i == 0) {
            int kind = rng_int(r, 3);
            double u = rng_unif(r);
            make_motion(&p->m, kind, u, rng_int(r, 2), r, W, H, p->r);
        } else {
            make_motion(&p->m, 0, rng_unif(r), 0, r, W, H, p->r);
            p->m.speed *= 0.5;
        }
    }
}

static void make_sound(sound_t *a, rng_t *group_r, rng_t *r, int cls, int K) {
    memset(a, 0, sizeof *a);
    a->noise = rng_range(group_r, 0.01, 0.05);
    a->noise_lp = rng_range(group_r, 0.1, 0.6);
    double l2;
    if (cls >= 0) l2 = 3.0 * (cls + 0.5 + rng_range(r, -0.25, 0.25)) / K;
    else l2 = rng_range(r, 0, 3);
    a->f0 = 220.0 * pow(2.0, l2);
    a->amp = rng_range(r, 0.15, 0.22);
    a->harm = rng_range(r, 0.2, 0.35);
    a->trem_rate = rng_range(r, 0.5, 4);
    a->trem_depth = rng_range(r, 0, 0.5);
    a->trem_phase = rng_range(r, 0, 2 * M_PI);
    a->vib_rate = rng_range(r, 3, 6);
    a->vib_depth = rng_range(r, 0.002, 0.01);
    double pan = rng_range(r, -0.3, 0.3);
    a->gain_l = pan > 0 ? 1 - pan : 1;
    a->gain_r = pan < 0 ? 1 + pan : 1;
    a->noise_seed = rng_next(r);
}

/* ---------------------------------------------------------------------------------------- drawing */

typedef struct {
    int W, H;
    uint8_t *by, *bu, *bv; /* background planes: W x H, (W/2) x (H/2) */
} canvas_t;

static double pattern_at(const scene_t *s, double x, double y, int W, int H) {
    double base = W < H ? W : H;
    double ca = cos(s->angle), sa = sin(s->angle);
    switch (s->pattern) {
    case 0: {
        double d = ((x - W / 2.0) * ca + (y - H / 2.0) * sa) / (0.5 * hypot(W, H));
        return 0.5 + 0.5 * d;
    }
    case 1: return 0.5 + 0.5 * sin(2 * M_PI * (x * ca + y * sa) / (s->period * base) + s->phase);
    case 2: {
        double cell = s->period * 0.5 * base;
        long cx = (long)floor(x / cell), cy = (long)floor(y / cell);
        return ((cx + cy) & 1) ? 1.0 : 0.0;
    }
    default: {
        double p = 0;
        for (int b = 0; b < 3; b++) {
            double bx = s->blob[b][0] * W, by = s->blob[b][1] * H, sg = s->blob[b][2] * base;
            double d2 = (x - bx) * (x - bx) + (y - by) * (y - by);
            p += exp(-d2 / (2 * sg * sg));
        }
        return p > 1 ? 1 : p;
    }
    }
}

static int canvas_init(canvas_t *cv, const scene_t *s, int W, int H) {
    cv->W = W, cv->H = H;
    cv->by = malloc((size_t)W * H);
    cv->bu = malloc((size_t)(W / 2) * (H / 2));
    cv->bv = malloc((size_t)(W / 2) * (H / 2));
    if (!cv->by || !cv->bu || !cv->bv) return -1;
    double rgb[3], y, u, v;
    for (int j = 0; j < H; j++)
        for (int i = 0; i < W; i++) {
            double p = pattern_at(s, i + 0.5 + s->dx, j + 0.5 + s->dy, W, H);
            for (int k = 0; k < 3; k++) rgb[k] = s->c0[k] + (s->c1[k] - s->c0[k]) * p;
            rgb_to_yuv(rgb, &y, &u, &v);
            cv->by[(size_t)j * W + i] = clamp_u8(y + s->bright);
        }
    for (int j = 0; j < H / 2; j++)
        for (int i = 0; i < W / 2; i++) {
            double p = pattern_at(s, 2 * i + 1 + s->dx, 2 * j + 1 + s->dy, W, H);
            for (int k = 0; k < 3; k++) rgb[k] = s->c0[k] + (s->c1[k] - s->c0[k]) * p;
            rgb_to_yuv(rgb, &y, &u, &v);
            cv->bu[(size_t)j * (W / 2) + i] = clamp_u8(u);
            cv->bv[(size_t)j * (W / 2) + i] = clamp_u8(v);
        }
    return 0;
}

static void canvas_free(canvas_t *cv) {
    free(cv->by), free(cv->bu), free(cv->bv);
    cv->by = cv->bu = cv->bv = NULL;
}

/* Signed distance (px) from the shape's outline; negative inside. */
static double shape_sdf(int shape, double x, double y, double r) {
    switch (shape) {
    case 0: return hypot(x, y) - r;
    case 1: return fmax(fabs(x), fabs(y)) - 0.85 * r;
    case 2: return (fabs(x) + fabs(y) - r) * 0.70710678;
    case 3: return fabs(hypot(x, y) - 0.7 * r) - 0.3 * r;
    default: { /* equilateral triangle of circumradius r (after Inigo Quilez's formula) */
        const double k = 1.7320508075688772;
        double h = r * 0.8660254; /* half side */
        double px = fabs(x) - h, py = -y + h / k;
        if (px + k * py > 0) {
            double nx = (px - k * py) / 2, ny = (-k * px - py) / 2;
            px = nx, py = ny;
        }
        px -= fmin(fmax(px, -2 * h), 0);
        double d = hypot(px, py);
        return py < 0 ? d : -d;
    }
    }
}

static void draw_sprite(AVFrame *f, const sprite_t *p, double cx, double cy) {
    int W = f->width, H = f->height;
    double ext = p->r * 1.5 + 2;
    int x0 = (int)floor(cx - ext), x1 = (int)ceil(cx + ext), y0 = (int)floor(cy - ext), y1 = (int)ceil(cy + ext);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > W) x1 = W;
    if (y1 > H) y1 = H;
    double cr = cos(p->rot), sr = sin(p->rot);
    for (int j = y0; j < y1; j++) {
        uint8_t *row = f->data[0] + (ptrdiff_t)j * f->linesize[0];
        for (int i = x0; i < x1; i++) {
            double dx = i + 0.5 - cx, dy = j + 0.5 - cy;
            double d = shape_sdf(p->shape, dx * cr + dy * sr, -dx * sr + dy * cr, p->r);
            double a = 0.5 - d;
            if (a <= 0) continue;
            if (a > 1) a = 1;
            row[i] = clamp_u8(row[i] + (p->y - row[i]) * a);
        }
    }
    for (int j = y0 / 2; j < (y1 + 1) / 2 && j < H / 2; j++) {
        uint8_t *ru = f->data[1] + (ptrdiff_t)j * f->linesize[1], *rv = f->data[2] + (ptrdiff_t)j * f->linesize[2];
        for (int i = x0 / 2; i < (x1 + 1) / 2 && i < W / 2; i++) {
            double dx = 2 * i + 1 - cx, dy = 2 * j + 1 - cy;
            double d = shape_sdf(p->shape, dx * cr + dy * sr, -dx * sr + dy * cr, p->r);
            double a = 0.5 - d / 2;
            if (a <= 0) continue;
            if (a > 1) a = 1;
            ru[i] = clamp_u8(ru[i] + (p->u - ru[i]) * a);
            rv[i] = clamp_u8(rv[i] + (p->v - rv[i]) * a);
        }
    }
}

static void draw_barcode(AVFrame *f, int index) {
    unsigned v = (unsigned)index & 0xffffu;
    for (int b = 0; b < SYNTH_BARCODE_BITS; b++) {
        int bit = (v >> (SYNTH_BARCODE_BITS - 1 - b)) & 1;
        int bx = (b % 8) * SYNTH_BARCODE_BLOCK, by = (b / 8) * SYNTH_BARCODE_BLOCK;
        for (int j = 0; j < SYNTH_BARCODE_BLOCK; j++)
            memset(f->data[0] + (ptrdiff_t)(by + j) * f->linesize[0] + bx, bit ? 235 : 16, SYNTH_BARCODE_BLOCK);
    }
    for (int j = 0; j < SYNTH_BARCODE_H / 2; j++) {
        memset(f->data[1] + (ptrdiff_t)j * f->linesize[1], 128, SYNTH_BARCODE_W / 2);
        memset(f->data[2] + (ptrdiff_t)j * f->linesize[2], 128, SYNTH_BARCODE_W / 2);
    }
}

static void render_frame(AVFrame *f, const canvas_t *cv, const clip_t *c, int index) {
    int W = c->width, H = c->height;
    for (int j = 0; j < H; j++) memcpy(f->data[0] + (ptrdiff_t)j * f->linesize[0], cv->by + (size_t)j * W, W);
    for (int j = 0; j < H / 2; j++) {
        memcpy(f->data[1] + (ptrdiff_t)j * f->linesize[1], cv->bu + (size_t)j * (W / 2), W / 2);
        memcpy(f->data[2] + (ptrdiff_t)j * f->linesize[2], cv->bv + (size_t)j * (W / 2), W / 2);
    }
    double t = (double)index * c->fps.den / c->fps.num;
    /* distractor first, the class-carrying shape on top */
    for (int i = c->scene.nsprites - 1; i >= 0; i--) {
        const sprite_t *p = &c->scene.spr[i];
        double x, y;
        motion_pos(&p->m, t, W, H, p->r, &x, &y);
        draw_sprite(f, p, x, y);
    }
    if (c->barcode) draw_barcode(f, index);
}

/* ------------------------------------------------------------------------------------------ sound */

typedef struct {
    const sound_t *s;
    int sr, silent;
    int64_t n;            /* next content sample */
    int64_t burst0, burst1;
    double phase, lp;
    rng_t noise;
} audio_gen_t;

static void audio_gen_init(audio_gen_t *g, const clip_t *c) {
    memset(g, 0, sizeof *g);
    g->s = &c->sound;
    g->sr = c->sample_rate;
    g->silent = c->silent;
    g->burst0 = g->burst1 = -1;
    if (c->burst_s >= 0) {
        g->burst0 = llrint(c->burst_s * c->sample_rate);
        g->burst1 = g->burst0 + llrint(SYNTH_BURST_SECONDS * c->sample_rate);
    }
    g->noise = (rng_t){c->sound.noise_seed};
}

static void audio_gen_run(audio_gen_t *g, float *L, float *R, int n) {
    const sound_t *s = g->s;
    for (int i = 0; i < n; i++, g->n++) {
        double t = (double)g->n / g->sr;
        double f = s->f0 * (1 + s->vib_depth * sin(2 * M_PI * s->vib_rate * t));
        g->phase += 2 * M_PI * f / g->sr;
        if (g->phase > 2 * M_PI) g->phase -= 2 * M_PI;
        double w = rng_unif(&g->noise) * 2 - 1;
        g->lp += s->noise_lp * (w - g->lp);
        double x = s->amp * (1 - s->trem_depth * 0.5 * (1 - cos(2 * M_PI * s->trem_rate * t + s->trem_phase))) *
                       (sin(g->phase) + s->harm * sin(2 * g->phase)) +
                   s->noise * g->lp;
        double l = x * s->gain_l, r = x * s->gain_r;
        if (g->n >= g->burst0 && g->n < g->burst1) {
            l = r = SYNTH_BURST_AMP * sin(2 * M_PI * SYNTH_BURST_HZ * (double)(g->n - g->burst0) / g->sr);
        }
        if (g->silent) l = r = 0;
        if (L) L[i] = (float)l;
        if (R) R[i] = (float)r;
    }
}

/* -------------------------------------------------------------------------------------- encoding */

static void set_err(char *err, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

static const char *averr(int e, char *buf, size_t n) {
    if (av_strerror(e, buf, n) < 0) snprintf(buf, n, "error %d", e);
    return buf;
}

static const AVCodec *pick_audio_encoder(int sr) {
    static const char *const names[] = {"libmp3lame", "mp2"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const AVCodec *c = avcodec_find_encoder_by_name(names[k]);
        if (!c) continue;
        if (!c->supported_samplerates) return c;
        for (const int *p = c->supported_samplerates; *p; p++)
            if (*p == sr) return c;
    }
    return avcodec_find_encoder(AV_CODEC_ID_PCM_S16LE);
}

static enum AVSampleFormat pick_sample_fmt(const AVCodec *c) {
    static const enum AVSampleFormat pref[] = {AV_SAMPLE_FMT_FLTP, AV_SAMPLE_FMT_S16P, AV_SAMPLE_FMT_S16,
                                               AV_SAMPLE_FMT_FLT,  AV_SAMPLE_FMT_S32P, AV_SAMPLE_FMT_S32};
    if (!c->sample_fmts) return AV_SAMPLE_FMT_S16;
    for (size_t k = 0; k < sizeof pref / sizeof pref[0]; k++)
        for (const enum AVSampleFormat *p = c->sample_fmts; *p != AV_SAMPLE_FMT_NONE; p++)
            if (*p == pref[k]) return *p;
    return AV_SAMPLE_FMT_NONE;
}

static void fill_audio(AVFrame *f, const float *L, const float *R, int n, int from) {
    for (int i = from; i < f->nb_samples; i++) {
        double l = i < n ? L[i] : 0, r = i < n ? R[i] : 0;
        switch (f->format) {
        case AV_SAMPLE_FMT_FLTP: ((float *)f->data[0])[i] = (float)l, ((float *)f->data[1])[i] = (float)r; break;
        case AV_SAMPLE_FMT_FLT: ((float *)f->data[0])[2 * i] = (float)l, ((float *)f->data[0])[2 * i + 1] = (float)r; break;
        case AV_SAMPLE_FMT_S16P:
            ((int16_t *)f->data[0])[i] = (int16_t)lrint(fmax(-1, fmin(1, l)) * 32767);
            ((int16_t *)f->data[1])[i] = (int16_t)lrint(fmax(-1, fmin(1, r)) * 32767);
            break;
        case AV_SAMPLE_FMT_S16:
            ((int16_t *)f->data[0])[2 * i] = (int16_t)lrint(fmax(-1, fmin(1, l)) * 32767);
            ((int16_t *)f->data[0])[2 * i + 1] = (int16_t)lrint(fmax(-1, fmin(1, r)) * 32767);
            break;
        case AV_SAMPLE_FMT_S32P:
            ((int32_t *)f->data[0])[i] = (int32_t)lrint(fmax(-1, fmin(1, l)) * 2147483647.0);
            ((int32_t *)f->data[1])[i] = (int32_t)lrint(fmax(-1, fmin(1, r)) * 2147483647.0);
            break;
        default: /* S32 */
            ((int32_t *)f->data[0])[2 * i] = (int32_t)lrint(fmax(-1, fmin(1, l)) * 2147483647.0);
            ((int32_t *)f->data[0])[2 * i + 1] = (int32_t)lrint(fmax(-1, fmin(1, r)) * 2147483647.0);
            break;
        }
    }
}

typedef struct {
    AVFormatContext *oc;
    AVCodecContext *venc, *aenc;
    AVStream *vst, *ast;
    AVFrame *vf, *af;
    AVPacket *pkt;
    int64_t a_shift; /* added to audio packet timestamps (the encoder's initial padding) */
} writer_t;

/* Moves every packet the encoder has ready into the muxer. */
static int drain(writer_t *w, AVCodecContext *enc, AVStream *st, int64_t shift) {
    for (;;) {
        int r = avcodec_receive_packet(enc, w->pkt);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return 0;
        if (r < 0) return r;
        if (w->pkt->pts != AV_NOPTS_VALUE) w->pkt->pts += shift;
        if (w->pkt->dts != AV_NOPTS_VALUE) w->pkt->dts += shift;
        av_packet_rescale_ts(w->pkt, enc->time_base, st->time_base);
        w->pkt->stream_index = st->index;
        r = av_interleaved_write_frame(w->oc, w->pkt);
        if (r < 0) return r;
    }
}

static void writer_free(writer_t *w) {
    if (w->oc && w->oc->pb) avio_closep(&w->oc->pb);
    avformat_free_context(w->oc);
    avcodec_free_context(&w->venc);
    avcodec_free_context(&w->aenc);
    av_frame_free(&w->vf);
    av_frame_free(&w->af);
    av_packet_free(&w->pkt);
}

/* Writes the clip to `path` through `path`.tmp. Returns 0 or 1 (err holds one sentence). */
static int write_clip(const char *path, const clip_t *c, char *err, size_t errlen) {
    writer_t w = {0};
    canvas_t cv = {0};
    float *L = NULL, *R = NULL;
    char tmp[4500], eb[256];
    int rc = 1, r = 0, opened = 0;
    const char *stage = "set up the encoders for";
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        set_err(err, errlen, "cannot write %s: the path is too long.", path);
        return 1;
    }
    if (canvas_init(&cv, &c->scene, c->width, c->height) < 0) goto nomem;

    r = avformat_alloc_output_context2(&w.oc, NULL, "avi", tmp);
    if (r < 0 || !w.oc) goto fail;
    w.oc->flags |= AVFMT_FLAG_BITEXACT;
    w.pkt = av_packet_alloc();
    if (!w.pkt) goto nomem;

    /* video: MPEG-4 part 2, fourcc XVID */
    const AVCodec *vc = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
    if (!vc) {
        set_err(err, errlen, "cannot write %s: this libavcodec has no MPEG-4 encoder.", path);
        goto out;
    }
    w.venc = avcodec_alloc_context3(vc);
    if (!w.venc) goto nomem;
    w.venc->width = c->width;
    w.venc->height = c->height;
    w.venc->pix_fmt = AV_PIX_FMT_YUV420P;
    w.venc->time_base = av_inv_q(c->fps);
    w.venc->framerate = c->fps;
    w.venc->gop_size = 12;
    w.venc->max_b_frames = 0;
    w.venc->thread_count = 1;
    w.venc->flags |= AV_CODEC_FLAG_QSCALE | AV_CODEC_FLAG_BITEXACT;
    w.venc->global_quality = FF_QP2LAMBDA * 4;
    w.venc->codec_tag = MKTAG('X', 'V', 'I', 'D');
    if (w.oc->oformat->flags & AVFMT_GLOBALHEADER) w.venc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if ((r = avcodec_open2(w.venc, vc, NULL)) < 0) goto fail;
    w.vst = avformat_new_stream(w.oc, NULL);
    if (!w.vst) goto nomem;
    w.vst->time_base = w.venc->time_base;
    w.vst->avg_frame_rate = c->fps;
    if ((r = avcodec_parameters_from_context(w.vst->codecpar, w.venc)) < 0) goto fail;
    w.vst->codecpar->codec_tag = MKTAG('X', 'V', 'I', 'D');
    w.vf = av_frame_alloc();
    if (!w.vf) goto nomem;
    w.vf->format = AV_PIX_FMT_YUV420P;
    w.vf->width = c->width;
    w.vf->height = c->height;
    if ((r = av_frame_get_buffer(w.vf, 0)) < 0) goto fail;

    /* audio */
    int frame_size = 0;
    int64_t total = 0, feed = 0;
    if (c->sample_rate > 0) {
        const AVCodec *ac = pick_audio_encoder(c->sample_rate);
        if (!ac) {
            set_err(err, errlen, "cannot write %s: this libavcodec has no usable audio encoder.", path);
            goto out;
        }
        w.aenc = avcodec_alloc_context3(ac);
        if (!w.aenc) goto nomem;
        w.aenc->sample_rate = c->sample_rate;
        w.aenc->sample_fmt = pick_sample_fmt(ac);
        av_channel_layout_default(&w.aenc->ch_layout, 2);
        if (ac->id != AV_CODEC_ID_PCM_S16LE) w.aenc->bit_rate = c->sample_rate >= 32000 ? 128000 : 64000;
        w.aenc->time_base = (AVRational){1, c->sample_rate};
        w.aenc->flags |= AV_CODEC_FLAG_BITEXACT;
        w.aenc->thread_count = 1;
        if (w.oc->oformat->flags & AVFMT_GLOBALHEADER) w.aenc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
        if ((r = avcodec_open2(w.aenc, ac, NULL)) < 0) goto fail;
        w.ast = avformat_new_stream(w.oc, NULL);
        if (!w.ast) goto nomem;
        w.ast->time_base = w.aenc->time_base;
        if ((r = avcodec_parameters_from_context(w.ast->codecpar, w.aenc)) < 0) goto fail;
        frame_size = w.aenc->frame_size > 0 ? w.aenc->frame_size : 1024;
        w.a_shift = w.aenc->initial_padding > 0 ? w.aenc->initial_padding : 0;
        w.af = av_frame_alloc();
        L = malloc(sizeof *L * frame_size);
        R = malloc(sizeof *R * frame_size);
        if (!w.af || !L || !R) goto nomem;
        w.af->format = w.aenc->sample_fmt;
        w.af->sample_rate = c->sample_rate;
        w.af->nb_samples = frame_size;
        if ((r = av_channel_layout_copy(&w.af->ch_layout, &w.aenc->ch_layout)) < 0) goto fail;
        if ((r = av_frame_get_buffer(w.af, 0)) < 0) goto fail;
        /* content samples, and how many to feed: the signal is advanced by the codec delay */
        total = av_rescale(c->n_frames, (int64_t)c->sample_rate * c->fps.den, c->fps.num);
        feed = total > w.a_shift ? total - w.a_shift : total;
    }
    audio_gen_t ag;
    audio_gen_init(&ag, c);
    for (int64_t skip = w.a_shift; skip > 0;) { /* advance the content by the codec delay */
        int n = skip > frame_size ? frame_size : (int)skip;
        audio_gen_run(&ag, L, R, n);
        skip -= n;
    }

    stage = "open";
    if ((r = avio_open(&w.oc->pb, tmp, AVIO_FLAG_WRITE)) < 0) goto fail;
    opened = 1;
    stage = "write";
    if ((r = avformat_write_header(w.oc, NULL)) < 0) goto fail;

    int64_t fed = 0;
    int small_last = w.aenc && (w.aenc->codec->capabilities &
                                (AV_CODEC_CAP_SMALL_LAST_FRAME | AV_CODEC_CAP_VARIABLE_FRAME_SIZE));
    for (int i = 0; i <= c->n_frames; i++) {
        if (i < c->n_frames) {
            stage = "encode the video of";
            if ((r = av_frame_make_writable(w.vf)) < 0) goto fail;
            render_frame(w.vf, &cv, c, i);
            w.vf->pts = i;
            w.vf->quality = w.venc->global_quality;
            w.vf->pict_type = AV_PICTURE_TYPE_NONE;
            if ((r = avcodec_send_frame(w.venc, w.vf)) < 0) goto fail;
            if ((r = drain(&w, w.venc, w.vst, 0)) < 0) goto fail;
        }
        if (!w.aenc) continue;
        /* audio up to the end of this frame's time (everything after the last frame) */
        int64_t until = i < c->n_frames ? av_rescale(i + 1, (int64_t)c->sample_rate * c->fps.den, c->fps.num) - w.a_shift
                                        : feed;
        if (until > feed) until = feed;
        stage = "encode the audio of";
        while (fed < until) {
            int n = until - fed > frame_size ? frame_size : (int)(until - fed);
            if (n < frame_size && i < c->n_frames) break; /* wait for a full frame */
            if ((r = av_frame_make_writable(w.af)) < 0) goto fail;
            w.af->nb_samples = (n < frame_size && small_last) ? n : frame_size;
            audio_gen_run(&ag, L, R, n);
            fill_audio(w.af, L, R, n, 0);
            w.af->pts = fed;
            if ((r = avcodec_send_frame(w.aenc, w.af)) < 0) goto fail;
            if ((r = drain(&w, w.aenc, w.ast, w.a_shift)) < 0) goto fail;
            fed += n;
        }
    }
    stage = "encode the video of";
    if ((r = avcodec_send_frame(w.venc, NULL)) < 0 || (r = drain(&w, w.venc, w.vst, 0)) < 0) goto fail;
    if (w.aenc) {
        stage = "encode the audio of";
        if ((r = avcodec_send_frame(w.aenc, NULL)) < 0 || (r = drain(&w, w.aenc, w.ast, w.a_shift)) < 0) goto fail;
    }
    stage = "write";
    if ((r = av_write_trailer(w.oc)) < 0) goto fail;
    if ((r = avio_closep(&w.oc->pb)) < 0) goto fail;
    if (rename(tmp, path) != 0) {
        set_err(err, errlen, "cannot write %s: %s.", path, strerror(errno));
        goto out;
    }
    rc = 0;
    goto out;

nomem:
    set_err(err, errlen, "cannot write %s: out of memory.", path);
    goto out;
fail:
    set_err(err, errlen, "cannot %s %s: %s.", stage, path, averr(r ? r : AVERROR_UNKNOWN, eb, sizeof eb));
out:
    writer_free(&w);
    canvas_free(&cv);
    free(L), free(R);
    if (rc && opened) unlink(tmp);
    return rc;
}

/* --------------------------------------------------------------------------------- shared helpers */

static AVRational fps_rational(double fps) {
    long k = lrint(fps * 1.001);
    if (fabs(fps - lrint(fps)) < 1e-9) return (AVRational){(int)lrint(fps), 1};
    if (k >= 1 && fabs(fps - k * 1000.0 / 1001.0) < 1e-4) return (AVRational){(int)(k * 1000), 1001};
    return av_d2q(fps, 1001);
}

static int frame_count_q(double seconds, AVRational fps) {
    double n = floor(seconds * fps.num / fps.den + 0.5);
    if (n < 1) n = 1;
    if (n > 1e7) n = 1e7;
    return (int)n;
}

int synth_frame_count(double seconds, double fps) {
    if (!(fps > 0) || !(seconds > 0)) return 1;
    return frame_count_q(seconds, fps_rational(fps));
}

static double marker_time_q(int n_frames, AVRational fps) { return (double)(n_frames / 2) * fps.den / fps.num; }

double synth_marker_time(double seconds, double fps) {
    if (!(fps > 0)) return 0;
    AVRational q = fps_rational(fps);
    return marker_time_q(synth_frame_count(seconds, fps), q);
}

int synth_barcode_read(const uint8_t *plane, ptrdiff_t linesize, int pixel_stride) {
    unsigned v = 0;
    for (int b = 0; b < SYNTH_BARCODE_BITS; b++) {
        int bx = (b % 8) * SYNTH_BARCODE_BLOCK, by = (b / 8) * SYNTH_BARCODE_BLOCK, sum = 0;
        for (int j = 2; j < 6; j++)
            for (int i = 2; i < 6; i++) sum += plane[(ptrdiff_t)(by + j) * linesize + (ptrdiff_t)(bx + i) * pixel_stride];
        double mean = sum / 16.0;
        if (mean > 64 && mean < 192) return -1;
        v = (v << 1) | (mean >= 128);
    }
    return (int)v;
}

static const char *check_size(int width, int height) {
    if (width < SYNTH_BARCODE_W || height < SYNTH_BARCODE_H || width > 4096 || height > 4096)
        return "must be from 64x16 to 4096x4096";
    if (width % 2 || height % 2) return "must have an even width and height";
    return NULL;
}

int synth_write_file(const char *path, double seconds, double fps, int width, int height, int sample_rate,
                     int silent_audio, int barcode, double tone_burst_s) {
    const char *why;
    if (!path || !*path) {
        fprintf(stderr, "synth: a file path is required.\n");
        return 2;
    }
    if (!(seconds > 0) || seconds > 3600) {
        fprintf(stderr, "synth: %s: seconds = %g is not valid: expected more than 0 and at most 3600.\n", path, seconds);
        return 2;
    }
    if (!(fps >= 1) || fps > 240) {
        fprintf(stderr, "synth: %s: fps = %g is not valid: expected 1 to 240.\n", path, fps);
        return 2;
    }
    if ((why = check_size(width, height))) {
        fprintf(stderr, "synth: %s: size %dx%d is not valid: it %s.\n", path, width, height, why);
        return 2;
    }
    if (sample_rate != 0 && (sample_rate < 8000 || sample_rate > 192000)) {
        fprintf(stderr, "synth: %s: sample rate %d is not valid: expected 0 (no audio) or 8000 to 192000.\n", path,
                sample_rate);
        return 2;
    }
    clip_t c;
    memset(&c, 0, sizeof c);
    c.width = width, c.height = height;
    c.fps = fps_rational(fps);
    c.n_frames = frame_count_q(seconds, c.fps);
    c.sample_rate = sample_rate;
    c.silent = silent_audio != 0;
    c.barcode = barcode != 0;
    c.burst_s = tone_burst_s >= 0 ? tone_burst_s : -1;
    /* the fixed scene: a grey-blue gradient, one disc drifting right and down, a 440 Hz tone */
    scene_t *s = &c.scene;
    s->c0[0] = 60, s->c0[1] = 80, s->c0[2] = 120;
    s->c1[0] = 150, s->c1[1] = 160, s->c1[2] = 190;
    s->pattern = 0;
    s->angle = 0.6;
    s->nsprites = 1;
    double base = width < height ? width : height, rgb[3] = {240, 200, 40}, y, u, v;
    rgb_to_yuv(rgb, &y, &u, &v);
    s->spr[0].shape = 0;
    s->spr[0].r = 0.12 * base;
    s->spr[0].y = clamp_u8(y), s->spr[0].u = clamp_u8(u), s->spr[0].v = clamp_u8(v);
    s->spr[0].m.kind = 0;
    s->spr[0].m.angle = 0.5;
    s->spr[0].m.speed = 0.45 * base;
    s->spr[0].m.x0 = width * 0.3, s->spr[0].m.y0 = height * 0.5;
    sound_t *a = &c.sound;
    a->f0 = 440, a->amp = 0.2, a->harm = 0.25, a->trem_rate = 1, a->trem_depth = 0.2, a->vib_rate = 5;
    a->vib_depth = 0.004, a->noise = 0.02, a->noise_lp = 0.3, a->gain_l = a->gain_r = 1;
    a->noise_seed = 0x5eed;
    char err[SYNTH_ERR_LEN];
    if (write_clip(path, &c, err, sizeof err)) {
        fprintf(stderr, "synth: %s\n", err);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------- CLI */

static const char *const usage_synth =
    "usage: avgen synth --out DIR [--classes K] [--videos N] [--cue audio|video|both] [--seed S]\n"
    "                   [--seconds F] [--size WxH] [--fps R] [--sample-rate HZ] [--markers] [--force]\n"
    "\n"
    "Writes a small UCF101-shaped data set of synthetic videos with audio: DIR/<Class>/v_<Class>_gGG_cCC.avi\n"
    "(MPEG-4 video, fourcc XVID, and MP3 audio in AVI) and the split lists DIR/ucfTrainTestlist/classInd.txt,\n"
    "trainlist01-03.txt and testlist01-03.txt (CRLF lines; each split holds out whole groups). The class\n"
    "shows in the motion of the main shape, in the pitch of the sound, or both; every frame carries its\n"
    "index as a barcode in the top-left 64x16 pixels (see generator/synth.h).\n"
    "  --out DIR            output folder (created; must be empty unless --force)\n"
    "  --classes K          number of classes, 2 to 101 (default 4)\n"
    "  --videos N           videos in total, spread over the classes, at least 2 per class (default 48)\n"
    "  --cue C              where the class shows: audio (frames carry no class information), video\n"
    "                       (the sound is random), or both (default both)\n"
    "  --seed S             random seed, a non-negative integer (default 1); same seed, same bytes\n"
    "  --seconds F          length of each video in seconds, more than 0 up to 600 (default 4)\n"
    "  --size WxH           frame size, even, 64x16 to 4096x4096 (default 320x240)\n"
    "  --fps R              frame rate, 1 to 240, decimal or a fraction such as 30000/1001 (default 25)\n"
    "  --sample-rate HZ     audio sample rate, 8000 to 192000 (default 44100)\n"
    "  --markers            put a 50 ms 1 kHz tone burst in the audio at the start of the middle frame\n"
    "  --force              write into DIR even if it is not empty (files of the same name are replaced)\n"
    "  -h, --help           this text\n";

typedef struct {
    const char *out;
    int classes, videos, cue;
    uint64_t seed;
    double seconds;
    int width, height;
    AVRational fps;
    int sample_rate;
    int force, markers;
} synth_args_t;

static int usage_error(const char *fmt, ...) {
    va_list ap;
    fputs("avgen synth: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see avgen synth --help)\n", stderr);
    return 2;
}

static int parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, synth_args_t *a, int *help) {
    memset(a, 0, sizeof *a);
    a->classes = 4, a->videos = 48, a->cue = CUE_BOTH, a->seed = 1, a->seconds = 4.0;
    a->width = 320, a->height = 240, a->fps = (AVRational){25, 1}, a->sample_rate = 44100;
    *help = 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            *help = 1;
            return 0;
        }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL;
        char name[64];
        if (!strcmp(arg, "--force")) { a->force = 1; continue; }
        if (!strcmp(arg, "--markers")) { a->markers = 1; continue; }
        if (strncmp(arg, "--", 2) != 0) return usage_error("unexpected argument \"%s\".", arg);
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, arg, len);
        name[len] = 0;
        static const char *const valued[] = {"--out", "--classes", "--videos", "--cue", "--seed",
                                             "--seconds", "--size", "--fps", "--sample-rate"};
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) known |= !strcmp(name, valued[k]);
        if (!known) {
            if (!strcmp(name, "--force") || !strcmp(name, "--markers"))
                return usage_error("%s takes no value.", name);
            return usage_error("unknown option %s.", name);
        }
        if (eq) val = eq + 1;
        else if (i + 1 < argc) val = argv[++i];
        else return usage_error("%s needs a value.", name);
        long v;
        double d;
        if (!strcmp(name, "--out")) {
            if (!*val) return usage_error("--out needs a folder name.");
            if (strlen(val) > 3800) return usage_error("--out is longer than 3800 characters.");
            a->out = val;
        } else if (!strcmp(name, "--classes")) {
            if (parse_int(val, 2, SYNTH_MAX_CLASSES, &v))
                return usage_error("--classes %s is not valid: expected an integer from 2 to %d.", val, SYNTH_MAX_CLASSES);
            a->classes = (int)v;
        } else if (!strcmp(name, "--videos")) {
            if (parse_int(val, 1, 1000000, &v))
                return usage_error("--videos %s is not valid: expected a positive integer up to 1000000.", val);
            a->videos = (int)v;
        } else if (!strcmp(name, "--cue")) {
            int k;
            for (k = 0; k < 3 && strcmp(val, cue_names[k]); k++) {}
            if (k == 3) return usage_error("--cue %s is not valid: expected audio, video or both.", val);
            a->cue = k;
        } else if (!strcmp(name, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(val, &end, 10);
            if (!*val || *end || errno || val[0] == '-' || val[0] == '+' || val[0] == ' ')
                return usage_error("--seed %s is not valid: expected a non-negative integer.", val);
            a->seed = (uint64_t)s;
        } else if (!strcmp(name, "--seconds")) {
            if (parse_double(val, &d) || !(d > 0) || d > 600)
                return usage_error("--seconds %s is not valid: expected a number more than 0 and at most 600.", val);
            a->seconds = d;
        } else if (!strcmp(name, "--size")) {
            int w = 0, h = 0, n = 0;
            const char *why;
            if (sscanf(val, "%d%*[xX]%d%n", &w, &h, &n) != 2 || val[n] || !(val[0] >= '0' && val[0] <= '9'))
                return usage_error("--size %s is not valid: expected WIDTHxHEIGHT such as 320x240.", val);
            if ((why = check_size(w, h))) return usage_error("--size %s is not valid: the size %s.", val, why);
            a->width = w, a->height = h;
        } else if (!strcmp(name, "--fps")) {
            const char *slash = strchr(val, '/');
            if (slash) {
                char numtxt[32];
                long num, den;
                size_t nl = (size_t)(slash - val);
                if (nl == 0 || nl >= sizeof numtxt) num = -1;
                else {
                    memcpy(numtxt, val, nl);
                    numtxt[nl] = 0;
                    if (parse_int(numtxt, 1, 10000000, &num)) num = -1;
                }
                if (num < 0 || parse_int(slash + 1, 1, 65535, &den) || (double)num / den < 1 || (double)num / den > 240)
                    return usage_error("--fps %s is not valid: expected a frame rate from 1 to 240.", val);
                AVRational q = {(int)num, (int)den};
                av_reduce(&q.num, &q.den, q.num, q.den, 1 << 30);
                a->fps = q;
            } else {
                if (parse_double(val, &d) || !(d >= 1) || d > 240)
                    return usage_error("--fps %s is not valid: expected a frame rate from 1 to 240.", val);
                a->fps = fps_rational(d);
            }
        } else if (!strcmp(name, "--sample-rate")) {
            if (parse_int(val, 8000, 192000, &v))
                return usage_error("--sample-rate %s is not valid: expected an integer from 8000 to 192000 Hz.", val);
            a->sample_rate = (int)v;
        }
    }
    if (!a->out) return usage_error("an output folder --out DIR is required.");
    if (a->videos < 2 * a->classes)
        return usage_error("--videos %d is too few for %d classes: each class needs at least 2 videos (at least %d).",
                           a->videos, a->classes, 2 * a->classes);
    return 0;
}

/* mkdir -p; returns 0 or errno */
static int make_dirs(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf) return ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return errno;
            struct stat st;
            if (stat(buf, &st) != 0) return errno;
            if (!S_ISDIR(st.st_mode)) return ENOTDIR;
            buf[i] = c;
        }
    }
    return 0;
}

static int dir_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            empty = 0;
            break;
        }
    closedir(d);
    return empty;
}

typedef struct {
    char *p;
    size_t n, cap;
} sbuf_t;

static int sb_printf(sbuf_t *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->n;
        int k = vsnprintf(b->p ? b->p + b->n : NULL, room, fmt, ap);
        va_end(ap);
        if (k < 0) return -1;
        if ((size_t)k < room) {
            b->n += (size_t)k;
            return 0;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap - b->n <= (size_t)k) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p, b->cap = cap;
    }
}

/* Writes `text` to path atomically. Returns 0 or 1 (err holds one sentence). */
static int write_text(const char *path, const sbuf_t *b, char *err, size_t errlen) {
    char tmp[4500];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        set_err(err, errlen, "cannot write %s: the path is too long.", path);
        return 1;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        set_err(err, errlen, "cannot write %s: %s.", path, strerror(errno));
        return 1;
    }
    int ok = (b->n == 0 || fwrite(b->p, 1, b->n, f) == b->n);
    int e = errno;
    if (fclose(f) != 0 && ok) ok = 0, e = errno;
    if (ok && rename(tmp, path) != 0) ok = 0, e = errno;
    if (!ok) {
        unlink(tmp);
        set_err(err, errlen, "cannot write %s: %s.", path, strerror(e));
        return 1;
    }
    return 0;
}

typedef struct {
    int cls, group, clip; /* 0-based */
    int n_groups;
} item_t;

static int groups_for(int n) {
    int g = (n + 4) / 5;
    int lo = n < 3 ? n : 3;
    if (g < lo) g = lo;
    if (g > 25) g = 25;
    return g;
}

static int is_test_group(int g, int G, int split) {
    int c = (int)lrint(7.0 * G / 25.0);
    if (c < 1) c = 1;
    if (c >= G) c = G - 1;
    int d = ((g - (split - 1) * c) % G + G) % G;
    return d < c;
}

static void format_rel(char *buf, size_t n, const item_t *it) {
    char folder[64], stem[64];
    class_folder(it->cls, folder, sizeof folder);
    class_stem(it->cls, stem, sizeof stem);
    snprintf(buf, n, "%s/v_%s_g%02d_c%02d.avi", folder, stem, it->group + 1, it->clip + 1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int gen_synth_main(int argc, char **argv) {
    synth_args_t a;
    int help, rc;
    if ((rc = parse_args(argc, argv, &a, &help))) return rc;
    if (help) {
        fputs(usage_synth, stdout);
        return 0;
    }
    double t0 = now_s();
    char err[SYNTH_ERR_LEN];

    struct stat st;
    if (stat(a.out, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            fprintf(stderr, "avgen synth: %s is not a folder.\n", a.out);
            return 1;
        }
        int e = dir_is_empty(a.out);
        if (e < 0) {
            fprintf(stderr, "avgen synth: cannot read the folder %s: %s.\n", a.out, strerror(errno));
            return 1;
        }
        if (!e && !a.force) {
            fprintf(stderr, "avgen synth: %s is not empty; pass --force to write into it anyway.\n", a.out);
            return 2;
        }
    }
    int e = make_dirs(a.out);
    if (e) {
        fprintf(stderr, "avgen synth: cannot create the folder %s: %s.\n", a.out, e == ENOTDIR ? "a part of the path is not a folder" : strerror(e));
        return 1;
    }

    /* the plan: clips per class, groups per class, clips per group */
    item_t *items = calloc((size_t)a.videos, sizeof *items);
    if (!items) {
        fprintf(stderr, "avgen synth: out of memory.\n");
        return 1;
    }
    int n_items = 0;
    for (int c = 0; c < a.classes; c++) {
        int n = a.videos / a.classes + (c < a.videos % a.classes);
        int G = groups_for(n);
        for (int g = 0; g < G; g++) {
            int m = n / G + (g < n % G);
            for (int k = 0; k < m; k++) items[n_items++] = (item_t){c, g, k, G};
        }
    }

    char path[4400], rel[256], folder[64];
    rc = 0;
    for (int c = 0; c < a.classes && !rc; c++) {
        class_folder(c, folder, sizeof folder);
        snprintf(path, sizeof path, "%s/%s", a.out, folder);
        if ((e = make_dirs(path))) {
            fprintf(stderr, "avgen synth: cannot create the folder %s: %s.\n", path, strerror(e));
            rc = 1;
        }
    }
    snprintf(path, sizeof path, "%s/ucfTrainTestlist", a.out);
    if (!rc && (e = make_dirs(path))) {
        fprintf(stderr, "avgen synth: cannot create the folder %s: %s.\n", path, strerror(e));
        rc = 1;
    }

    int n_frames = frame_count_q(a.seconds, a.fps);
    int step = n_items / 20 > 1 ? n_items / 20 : 1;
    const char *acodec = "mp3";
    {
        const AVCodec *ac = pick_audio_encoder(a.sample_rate);
        acodec = !ac ? "none" : ac->id == AV_CODEC_ID_MP3 ? "mp3" : ac->id == AV_CODEC_ID_MP2 ? "mp2" : "pcm_s16le";
    }
    for (int i = 0; i < n_items && !rc; i++) {
        const item_t *it = &items[i];
        clip_t clip;
        memset(&clip, 0, sizeof clip);
        clip.width = a.width, clip.height = a.height;
        clip.fps = a.fps;
        clip.n_frames = n_frames;
        clip.sample_rate = a.sample_rate;
        clip.barcode = 1;
        clip.burst_s = a.markers ? marker_time_q(n_frames, a.fps) : -1;
        rng_t gr = rng_make(a.seed, it->cls, it->group, 0, 1);
        rng_t cr = rng_make(a.seed, it->cls, it->group, it->clip + 1, 2);
        rng_t ga = rng_make(a.seed, it->cls, it->group, 0, 3);
        rng_t ca = rng_make(a.seed, it->cls, it->group, it->clip + 1, 4);
        make_group_style(&clip.scene, &gr);
        make_clip_scene(&clip.scene, &cr, a.width, a.height, a.cue == CUE_AUDIO ? -1 : it->cls, a.classes);
        make_sound(&clip.sound, &ga, &ca, a.cue == CUE_VIDEO ? -1 : it->cls, a.classes);
        format_rel(rel, sizeof rel, it);
        snprintf(path, sizeof path, "%s/%s", a.out, rel);
        if (write_clip(path, &clip, err, sizeof err)) {
            fprintf(stderr, "avgen synth: %s\n", err);
            rc = 1;
            break;
        }
        if ((i + 1) % step == 0 || i + 1 == n_items)
            fprintf(stderr, "avgen synth: %d/%d videos (%s)\n", i + 1, n_items, rel);
    }

    /* the lists */
    for (int f = 0; f < 7 && !rc; f++) {
        sbuf_t b = {0};
        int bad = 0;
        if (f == 0) {
            for (int c = 0; c < a.classes; c++) {
                class_folder(c, folder, sizeof folder);
                bad |= sb_printf(&b, "%d %s\r\n", c + 1, folder);
            }
            snprintf(path, sizeof path, "%s/ucfTrainTestlist/classInd.txt", a.out);
        } else {
            int split = (f - 1) / 2 + 1, test = (f - 1) % 2;
            for (int i = 0; i < n_items; i++) {
                const item_t *it = &items[i];
                if (is_test_group(it->group, it->n_groups, split) != test) continue;
                format_rel(rel, sizeof rel, it);
                if (test) bad |= sb_printf(&b, "%s\r\n", rel);
                else bad |= sb_printf(&b, "%s %d\r\n", rel, it->cls + 1);
            }
            snprintf(path, sizeof path, "%s/ucfTrainTestlist/%slist%02d.txt", a.out, test ? "test" : "train", split);
        }
        if (bad) {
            fprintf(stderr, "avgen synth: out of memory.\n");
            rc = 1;
        } else if (write_text(path, &b, err, sizeof err)) {
            fprintf(stderr, "avgen synth: %s\n", err);
            rc = 1;
        }
        free(b.p);
    }
    if (!rc) {
        int nmin = a.videos / a.classes, nmax = nmin + (a.videos % a.classes != 0);
        int gmin = groups_for(nmin), gmax = groups_for(nmax);
        char per[64], grp[64];
        if (nmin == nmax) snprintf(per, sizeof per, "%d", nmin);
        else snprintf(per, sizeof per, "%d-%d", nmin, nmax);
        if (gmin == gmax) snprintf(grp, sizeof grp, "%d", gmin);
        else snprintf(grp, sizeof grp, "%d-%d", gmin, gmax);
        fprintf(stderr,
                "avgen synth: wrote %d videos of %d classes (%s per class in %s groups) and 3 splits to %s in %.1f s: "
                "%dx%d, %d frames at %g fps, mpeg4 (XVID) + %s %d Hz stereo, cue %s, seed %" PRIu64 "%s\n",
                n_items, a.classes, per, grp, a.out, now_s() - t0, a.width, a.height,
                n_frames, av_q2d(a.fps), acodec, a.sample_rate, cue_names[a.cue], a.seed, a.markers ? ", markers" : "");
    }
    free(items);
    return rc;
}
