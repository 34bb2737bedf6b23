/* train.c: the training loop (see train.h) and evaluation over a loader. Determinism: the loader's clips
 * depend only on the seed and the epoch, the CPU ops are deterministic, and a checkpoint records the
 * epoch, the batch within it and the optimizer state, so a resumed run redoes exactly the same steps. */
#include "train.h"

#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "evaluate.h"
#include "loader.h"
#include "rt_fs.h"
#include "safetensors.h"

double rt_lr_multiplier(const rt_train_cfg *cfg, int64_t step, int64_t total, int64_t per_epoch) {
    if (cfg->warmup > 0 && step < cfg->warmup) return (double)(step + 1) / cfg->warmup;
    switch (cfg->schedule) {
    case RT_SCHED_COSINE: {
        int64_t span = total - cfg->warmup;
        double p = span > 0 ? (double)(step - cfg->warmup) / (double)span : 1;
        if (p > 1) p = 1;
        return 0.5 * (1 + cos(M_PI * p));
    }
    case RT_SCHED_STEP: {
        int64_t epoch = per_epoch > 0 ? step / per_epoch : 0;
        return pow(cfg->step_gamma, (double)(epoch / (cfg->step_every > 0 ? cfg->step_every : 1)));
    }
    default: return 1;
    }
}

void rt_copy_params(avgen_ctx *dst, const avgen_ctx *src) {
    for (int i = 0; i < dst->g->n_tensors; i++) {
        const avgen_tensor_desc *t = &dst->g->tensors[i];
        if (t->kind != AVGEN_T_FROZEN && t->kind != AVGEN_T_TRAINABLE && t->kind != AVGEN_T_BUFFER) continue;
        int j = rt_find(src->g, t->name);
        if (j >= 0 && src->g->tensors[j].bytes == t->bytes) memcpy(rt_ptr(dst, i), rt_ptr(src, j), (size_t)t->bytes);
    }
}

/* ----------------------------------------------------------------------------------------- checkpoints */

static int save_tensors(avgen_ctx *c, const char *path, char *err, size_t errlen) {
    st_writer *w = st_writer_new();
    if (!w) return -1;
    int rc = 0;
    for (int i = 0; i < c->g->n_tensors && !rc; i++) {
        const avgen_tensor_desc *t = &c->g->tensors[i];
        if (t->kind != AVGEN_T_TRAINABLE && t->kind != AVGEN_T_OPTSTATE && t->kind != AVGEN_T_BUFFER) continue;
        rc = st_writer_add(w, t->name, t->dtype == AVGEN_DT_I64 ? ST_I64 : ST_F32, t->ndim, t->shape, rt_ptr(c, i), err,
                           errlen);
    }
    if (!rc) rc = st_writer_write(w, path, err, errlen);
    st_writer_free(w);
    return rc ? -1 : 0;
}

int rt_load_checkpoint(avgen_ctx *c, const char *path, char *err, size_t errlen) {
    st_file *f = st_open(path, err, errlen);
    if (!f) return -1;
    for (int i = 0; i < c->g->n_tensors; i++) {
        const avgen_tensor_desc *t = &c->g->tensors[i];
        if (t->kind != AVGEN_T_TRAINABLE && t->kind != AVGEN_T_OPTSTATE && t->kind != AVGEN_T_BUFFER) continue;
        const st_tensor *s = st_find(f, t->name);
        if (!s) {
            if (t->kind == AVGEN_T_OPTSTATE) continue; /* a best-model file holds no Adam state */
            snprintf(err, errlen, "%s has no tensor %s; expected a checkpoint of this configuration", path, t->name);
            st_close(f);
            return -1;
        }
        if ((uint64_t)s->nbytes != (uint64_t)t->bytes || (t->dtype == AVGEN_DT_I64) != (s->dtype == ST_I64)) {
            snprintf(err, errlen, "%s: tensor %s has another shape or type than this configuration's", path, t->name);
            st_close(f);
            return -1;
        }
        memcpy(rt_ptr(c, i), s->data, (size_t)s->nbytes);
        char why[400];
        if (t->dtype == AVGEN_DT_F32 && rt_check_values("tensor", t->name, rt_ptr(c, i), t->bytes / 4, why, sizeof why)) {
            snprintf(err, errlen, "%s: %s", path, why);
            st_close(f);
            return -1;
        }
    }
    st_close(f);
    return 0;
}

typedef struct {
    int64_t step, epoch, batch, adam_step, bad_epochs, epoch_steps;
    double best_val, epoch_loss; /* epoch_*: the current epoch so far, so a resumed epoch reports the same mean */
} train_state;

static int save_checkpoint(const rt_train_cfg *cfg, avgen_ctx *c, const train_state *st, char *err, size_t errlen) {
    char file[64], path[2300], jpath[2300], old[2300];
    snprintf(file, sizeof file, "ckpt-%08lld.safetensors", (long long)st->step);
    snprintf(path, sizeof path, "%s/%s", cfg->run_dir, file);
    if (save_tensors(c, path, err, errlen)) return -1;
    /* the pointer file is replaced last: a reader always sees a complete checkpoint */
    snprintf(jpath, sizeof jpath, "%s/checkpoint.json", cfg->run_dir);
    char prev[64] = "";
    json_object *po = json_object_from_file(jpath), *x;
    if (po && json_object_object_get_ex(po, "file", &x)) snprintf(prev, sizeof prev, "%s", json_object_get_string(x));
    json_object_put(po);
    char text[2048];
    snprintf(text, sizeof text,
             "{\"file\": \"%s\", \"step\": %lld, \"epoch\": %lld, \"batch\": %lld, \"adam_step\": %lld, \"best_val\": %.17g, "
             "\"bad_epochs\": %lld, \"epoch_loss\": %.17g, \"epoch_steps\": %lld, \"seed\": %llu, \"name\": \"%s\", "
             "\"config\": \"%s\"}\n",
             file, (long long)st->step, (long long)st->epoch, (long long)st->batch, (long long)st->adam_step, st->best_val,
             (long long)st->bad_epochs, st->epoch_loss, (long long)st->epoch_steps, (unsigned long long)cfg->seed,
             cfg->name ? cfg->name : "", cfg->config_hash ? cfg->config_hash : "");
    if (rt_write_atomic(jpath, text)) {
        snprintf(err, errlen, "cannot write %s (%s)", jpath, strerror(errno));
        return -1;
    }
    if (prev[0] && strcmp(prev, file)) {
        snprintf(old, sizeof old, "%s/%s", cfg->run_dir, prev);
        unlink(old);
    }
    return 0;
}

static int load_state(const rt_train_cfg *cfg, avgen_ctx *c, train_state *st, char *err, size_t errlen) {
    char jpath[2300], path[2400];
    snprintf(jpath, sizeof jpath, "%s/checkpoint.json", cfg->run_dir);
    json_object *o = json_object_from_file(jpath), *x;
    if (!o) {
        snprintf(err, errlen, "%s cannot be read; expected a run folder with a checkpoint", jpath);
        return -1;
    }
#define GI(k) (json_object_object_get_ex(o, k, &x) ? json_object_get_int64(x) : -1)
    st->step = GI("step"), st->epoch = GI("epoch"), st->batch = GI("batch"), st->adam_step = GI("adam_step");
    st->bad_epochs = GI("bad_epochs"), st->epoch_steps = GI("epoch_steps");
    if (st->epoch_steps < 0) st->epoch_steps = 0;
    st->best_val = json_object_object_get_ex(o, "best_val", &x) ? json_object_get_double(x) : -1;
    st->epoch_loss = json_object_object_get_ex(o, "epoch_loss", &x) ? json_object_get_double(x) : 0;
    const char *conf = json_object_object_get_ex(o, "config", &x) ? json_object_get_string(x) : "";
    if (cfg->config_hash && conf && strcmp(conf, cfg->config_hash)) {
        snprintf(err, errlen, "%s was trained with another configuration (%s, now %s); resume it with the same "
                              "description and overrides (only train.epochs may change)", cfg->run_dir, conf, cfg->config_hash);
        json_object_put(o);
        return -1;
    }
#undef GI
    const char *file = json_object_object_get_ex(o, "file", &x) ? json_object_get_string(x) : NULL;
    snprintf(path, sizeof path, "%s/%s", cfg->run_dir, file ? file : "?");
    json_object_put(o);
    if (!file || st->step < 0 || st->epoch < 0 || st->batch < 0) {
        snprintf(err, errlen, "%s is incomplete", jpath);
        return -1;
    }
    if (rt_load_checkpoint(c, path, err, errlen)) return -1;
    c->adam_step = st->adam_step;
    return 0;
}

/* Keeps the log's lines up to the checkpoint (steps <= step, epochs < epoch): a resumed run appends
 * exactly what the interrupted one would have. */
static void truncate_log(const char *path, int64_t step, int64_t epoch) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char *line = NULL, *keep = NULL;
    size_t cap = 0, klen = 0, kcap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_object *o = json_tokener_parse(line), *x;
        int ok = o != NULL;
        if (ok && json_object_object_get_ex(o, "step", &x)) ok = json_object_get_int64(x) <= step;
        else if (ok && json_object_object_get_ex(o, "epoch_end", &x)) ok = json_object_get_int64(x) < epoch;
        json_object_put(o);
        if (!ok) continue;
        size_t l = strlen(line);
        if (klen + l + 1 > kcap) {
            kcap = (klen + l + 1) * 2;
            char *nk = realloc(keep, kcap);
            if (!nk) break;
            keep = nk;
        }
        memcpy(keep + klen, line, l + 1);
        klen += l;
    }
    free(line);
    fclose(f);
    rt_write_atomic(path, keep ? keep : "");
    free(keep);
}

/* ------------------------------------------------------------------------------------------- loop */

typedef struct {
    FILE *log;
    double t_step, t_start;
    int64_t per_epoch, total;
    int P;
} loop_state;

/* One optimizer update over the `micro` accumulated batches, its log line and progress. 0, or -1 with err
 * (a CUDA error). */
static int do_update(const rt_train_cfg *cfg, avgen_ctx *c, train_state *st, loop_state *ls, int64_t e, int micro,
                     double loss_sum, double waited, char *err, size_t errlen) {
    c->grad_scale = 1.0 / micro;
    c->lr_scale = rt_lr_multiplier(cfg, st->step, ls->total, ls->per_epoch);
    double gn = 0;
    if (c->dev) {  /* the gradients stay on the device */
        if (rt_cuda_grad_sumsq(c, &gn, err, errlen)) return -1;
    } else {
        for (int i = 0; i < c->g->n_tensors; i++) {
            const avgen_tensor_desc *t = &c->g->tensors[i];
            if (t->kind != AVGEN_T_PGRAD) continue;
            const float *g = rt_ptr(c, i);
            for (int64_t k = 0; k < t->bytes / 4; k++) gn += (double)g[k] * g[k];
        }
    }
    gn = sqrt(gn) * c->grad_scale;
    rt_run_update(c, cfg->update);
    double step_loss = loss_sum / micro;
    st->step++, st->epoch_loss += step_loss, st->epoch_steps++;
    st->adam_step = c->adam_step;
    double dt = rt_now() - ls->t_step;
    ls->t_step = rt_now();
    const int64_t *ab = cfg->train_g->arena_bytes;
    fprintf(ls->log,
            "{\"step\": %lld, \"epoch\": %lld, \"loss\": %.9g, \"lr\": %.9g, \"head_lr\": %.9g, \"grad_norm\": %.9g, "
            "\"clips_per_s\": %.2f, \"pairs_per_s\": %.2f, \"data_wait_s\": %.4f, \"memory_bytes\": %lld}\n",
            (long long)st->step, (long long)e, step_loss, cfg->k->lr * c->lr_scale, cfg->k->head_lr * c->lr_scale, gn,
            micro * cfg->k->batch / dt, micro * ls->P / dt, waited, (long long)(ab[0] + ab[1] + ab[2] + ab[3]));
    fflush(ls->log);
    if (!cfg->quiet) {
        double el = rt_now() - ls->t_start;
        double eta = st->step > 0 ? el / (double)st->step * (double)(ls->total - st->step) : 0;
        fprintf(stderr, "\r[epoch %lld/%d] step %lld/%lld loss %.4f lr %.3g, ETA %d:%02d   ", (long long)e + 1, cfg->epochs,
                (long long)st->step, (long long)ls->total, step_loss, cfg->k->lr * c->lr_scale, (int)eta / 60, (int)eta % 60);
    }
    return 0;
}

/* The epoch's next batch whose clips all read, from batch *b on (a batch with a corrupt clip is skipped: the loader
 * counts it); *b becomes its number, *waited the time spent waiting for the loader. NULL at the epoch's end. */
static const ld_batch *next_valid(ld_loader *tl, int64_t *b, int64_t nb, double *waited) {
    *waited = 0;
    for (; *b < nb; (*b)++) {
        const double tw = rt_now();
        const ld_batch *bt = ld_next(tl);
        *waited += rt_now() - tw;
        if (!bt) break;
        int ok = 1;
        for (int i = 0; i < bt->count; i++) ok &= bt->valid[i];
        if (ok) return bt;
        ld_release(tl, bt);
    }
    return NULL;
}

/* With the CUDA backend: the device's parameters, gradients, buffers and optimizer state into the host
 * arenas (before a checkpoint or a copy to the evaluation context), unless they are there already for this
 * optimizer step (*host_step: the step the host arenas hold). 0, or -1 with err. */
static int from_device(avgen_ctx *c, int64_t step, int64_t *host_step, char *err, size_t errlen) {
    if (!c->dev || *host_step == step) return 0;
    if (rt_cuda_download(c, AVGEN_ARENA_TRAIN, err, errlen)) return -1;
    *host_step = step;
    return 0;
}

/* RUN/classes.json: the class names by label of the prepared data the run trains on ({"classes": [...]},
 * "" where the manifest names none), so that a classifier of the run's checkpoints can name its answers
 * (rt_classify). 0, or -1 with err. */
static int write_classes(const rt_train_cfg *cfg, char *err, size_t errlen) {
    const int C = cfg->k->classes;
    char (*names)[128] = calloc((size_t)C, 128);
    if (!names) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ld_class_names(cfg->data, names, C);
    json_object *o = json_object_new_object(), *a = json_object_new_array();
    for (int i = 0; i < C; i++) json_object_array_add(a, json_object_new_string(names[i]));
    json_object_object_add(o, "classes", a);
    char path[2300];
    snprintf(path, sizeof path, "%s/classes.json", cfg->run_dir);
    const char *txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
    char *tn = malloc(strlen(txt) + 2);
    errno = ENOMEM;
    int rc = tn ? (sprintf(tn, "%s\n", txt), rt_write_atomic(path, tn)) : -1;
    if (rc) snprintf(err, errlen, "cannot write %s (%s)", path, strerror(errno));
    free(tn);
    json_object_put(o);
    free(names);
    return rc;
}

static ld_loader *open_loader(const rt_train_cfg *cfg, int holdout, int train, int pinned, char *err, size_t errlen) {
    ld_config lc;
    memset(&lc, 0, sizeof lc);
    lc.dir = cfg->data, lc.split = "train", lc.holdout = holdout, lc.val_every = cfg->val_every;
    lc.frames = cfg->frames, lc.stride = cfg->stride, lc.batch = cfg->k->batch, lc.train = train, lc.seed = cfg->seed;
    lc.threads = cfg->threads, lc.ring = 2 * cfg->threads + 1, lc.audio_rows = cfg->audio_rows, lc.mel_bins = cfg->mel_bins;
    lc.window_seconds = cfg->window_seconds, lc.norm_mean = cfg->norm_mean, lc.norm_std = cfg->norm_std;
    if (pinned) lc.host_alloc = rt_cuda_host_alloc, lc.host_free = rt_cuda_host_free;
    return ld_open(&lc, err, errlen);
}

int rt_train(const rt_train_cfg *cfg, char *err, size_t errlen) {
    char path[2400];
    int rc0;
    if (cfg->backend && (rc0 = rt_backend_check(cfg->backend, err, errlen))) return rc0; /* before any data is read */
    if (rt_mkdirs(cfg->run_dir)) {
        snprintf(err, errlen, "cannot create the run folder %s (%s)", cfg->run_dir, strerror(errno));
        return 1;
    }
    rt_remove_partial(cfg->run_dir, 1); /* the run folder and its program/ */
    /* steps on a GPU: the batches in page-locked memory, uploaded from there */
    char uwhy[300];
    const int pinned = cfg->backend && cfg->backend->backend && strcmp(cfg->backend->backend, "cpu") &&
                       rt_cuda_usable(uwhy, sizeof uwhy);
    ld_loader *tl = open_loader(cfg, LD_TRAIN_ONLY, 1, pinned, err, errlen);
    if (!tl) return 2;
    if (ld_size(tl) != cfg->k->image) {
        snprintf(err, errlen, "%s holds %dx%d frames but the configuration's image is %dx%d; prepare with --size %d",
                 cfg->data, ld_size(tl), ld_size(tl), cfg->k->image, cfg->k->image, cfg->k->image);
        ld_close(tl);
        return 2;
    }
    if (ld_classes(tl) > cfg->k->classes) {
        snprintf(err, errlen, "%s has %d classes but the configuration's head has %d (head.classes)", cfg->data,
                 ld_classes(tl), cfg->k->classes);
        ld_close(tl);
        return 2;
    }
    if (write_classes(cfg, err, errlen)) {
        ld_close(tl);
        return 1;
    }
    char verr[512];
    ld_loader *vl = open_loader(cfg, LD_VAL_ONLY, 0, pinned, verr, sizeof verr);
    if (!vl && !cfg->quiet)
        fprintf(stderr, "avgen train: no validation: %s (validation groups: group %% %d == 0)\n", verr, cfg->val_every);
    avgen_ctx c, ev;
    int rc = 0;
    int have_ev = 0;
    if ((rc = rt_ctx_init(&c, cfg->train_g, cfg->k, err, errlen))) {
        ld_close(tl), ld_close(vl);
        return rc;
    }
    if (vl && rt_ctx_init(&ev, cfg->eval_g, cfg->k, err, errlen) == 0) have_ev = 1;
    st_file *wf = NULL;
    if (cfg->weights && !(wf = st_open(cfg->weights, err, errlen))) { rc = 2; goto done; }
    if ((rc = rt_init_params(&c, wf, cfg->seed, NULL, NULL, err, errlen))) goto done;
    train_state st = {.best_val = -1};
    snprintf(path, sizeof path, "%s/log.jsonl", cfg->run_dir);
    if (cfg->resume) {
        if (load_state(cfg, &c, &st, err, errlen)) { rc = 2; goto done; }
        truncate_log(path, st.step, st.epoch);
        if (!cfg->quiet)
            fprintf(stderr, "avgen train: resuming %s at step %lld (epoch %lld, batch %lld)\n", cfg->run_dir,
                    (long long)st.step, (long long)st.epoch, (long long)st.batch);
    } else {
        unlink(path);
    }
    int cuda = 0, ev_cuda = 0, val_off = 0;
    int64_t host_step = st.step;  /* the host arenas hold the state after this step (uploaded at attach) */
    rt_backend_opts bo;
    if (cfg->backend) {
        bo = *cfg->backend;
        bo.quiet = bo.quiet || cfg->quiet;
        bo.prefetch_inputs = 1; /* the next batch goes up while a step runs */
        if (rt_backend_attach(&c, &bo, &cuda, err, errlen)) { rc = 1; goto done; }
        /* on the CPU the validation context's tensors are in host memory beside the training context's */
        if (!cuda && have_ev && rt_host_fits(&c, &ev, err, errlen)) { rc = 1; goto done; }
        if (cuda && !cfg->quiet)
            fprintf(stderr, "avgen train: steps on %s (%s GEMMs)\n", rt_cuda_device_name(&c),
                    cfg->backend->precision ? cfg->backend->precision : "fp32");
    }
    FILE *log = fopen(path, "a");
    if (!log) {
        snprintf(err, errlen, "cannot write %s (%s)", path, strerror(errno));
        rc = 1;
        goto done;
    }
    if (ld_start_epoch(tl, 0)) {
        snprintf(err, errlen, "out of memory while planning the epoch");
        rc = 1;
        fclose(log);
        goto done;
    }
    loop_state ls;
    ls.log = log, ls.per_epoch = (ld_batches_per_epoch(tl) + cfg->grad_accum - 1) / cfg->grad_accum;
    ls.total = ls.per_epoch * cfg->epochs, ls.P = cfg->k->batch * cfg->k->frames;
    ls.t_start = rt_now();
    double wait_total = 0;
    int stop = 0;
    if (!cfg->resume) st.epoch_loss = 0, st.epoch_steps = 0;
    for (int64_t e = st.epoch; e < cfg->epochs && !stop && !rc; e++) {
        if (ld_start_epoch(tl, e)) {
            snprintf(err, errlen, "out of memory while planning epoch %lld", (long long)e);
            rc = 1;
            break;
        }
        const int64_t nb = ld_batches_per_epoch(tl);
        /* skip what a resumed run already did in this epoch */
        int64_t b0 = e == st.epoch ? st.batch : 0;
        for (int64_t b = 0; b < b0; b++) {
            const ld_batch *bt = ld_next(tl);
            if (bt) ld_release(tl, bt);
        }
        double loss_sum = 0, waited = 0;
        int micro = 0;
        ls.t_step = rt_now();
        /* bt: the batch of this step, staged; nx: the next one, staged while this step runs */
        int64_t b = b0;
        const ld_batch *bt = next_valid(tl, &b, nb, &waited), *nx = NULL;
        wait_total += waited;
        if (bt && rt_stage_batch(&c, bt, err, errlen)) rc = 1;
        while (bt && !rc) {
            if (rt_take_inputs(&c, err, errlen)) {
                rc = 1;
                break;
            }
            st.epoch = e, st.batch = b + 1;
            rt_run_fwd_bwd(&c, micro == 0, cfg->forward, cfg->backward);
            int64_t b1 = b + 1;
            double w1 = 0;
            nx = next_valid(tl, &b1, nb, &w1);
            wait_total += w1;
            if (nx && rt_stage_batch(&c, nx, err, errlen)) {
                rc = 1;
                break;
            }
            const int lt = rt_find(c.g, "loss");
            /* on the GPU: waits for the step (its errors show here), and so for the batch's upload, and for the
             * next batch's */
            const int dl = c.dev ? rt_cuda_download_tensor(&c, lt, err, errlen) : 0;
            ld_release(tl, bt);
            bt = NULL;
            if (c.failed) {
                snprintf(err, errlen, "%s", c.err);
                rc = 2;
                break;
            }
            if (dl) {
                rc = 1;
                break;
            }
            float loss = *(float *)rt_ptr(&c, lt);
            if (!isfinite(loss)) {
                char ck[2300];
                snprintf(ck, sizeof ck, "%s/checkpoint.json", cfg->run_dir);
                struct stat cs;
                snprintf(err, errlen, "the loss became %s at step %lld (epoch %lld); %s", isnan(loss) ? "NaN" : "infinite",
                         (long long)st.step, (long long)e,
                         stat(ck, &cs) == 0 ? "the last good checkpoint is kept (checkpoint.json)" : "no checkpoint was written before it");
                rc = 3;
                break;
            }
            loss_sum += loss;
            if (++micro >= cfg->grad_accum) {
                if (do_update(cfg, &c, &st, &ls, e, micro, loss_sum, waited, err, errlen)) {
                    rc = 1;
                    break;
                }
                loss_sum = 0, micro = 0;
                if (cfg->checkpoint_every > 0 && st.step % cfg->checkpoint_every == 0 &&
                    (from_device(&c, st.step, &host_step, err, errlen) || save_checkpoint(cfg, &c, &st, err, errlen))) {
                    rc = 1;
                    break;
                }
                if (cfg->max_steps > 0 && st.step >= cfg->max_steps) stop = 1;
            }
            bt = nx, nx = NULL, b = b1, waited = w1;
            if (stop) break;
        }
        if (bt || nx) {  /* held when the loop stopped early: handed back once no copy reads them */
            rt_drop_inputs(&c);
            if (bt) ld_release(tl, bt);
            if (nx) ld_release(tl, nx);
        }
        /* the epoch's last, partial accumulation still makes an update */
        if (!rc && micro > 0) {
            if (do_update(cfg, &c, &st, &ls, e, micro, loss_sum, waited, err, errlen)) rc = 1;
            if (cfg->max_steps > 0 && st.step >= cfg->max_steps) stop = 1;
        }
        if (rc || from_device(&c, st.step, &host_step, err, errlen)) {  /* the epoch's end reads the state */
            rc = rc ? rc : 1;
            break;
        }
        /* end of epoch: validation, best model, early stopping, checkpoint */
        double val_loss = -1, val_top1 = -1;
        if (have_ev && !stop && !val_off) {
            rt_copy_params(&ev, &c);
            rt_eval_result r;
            char verr2[512];
            int vrc = 0;
            if (cuda && !ev_cuda) {
                /* the evaluation graph on the same device, attached with the parameters; it uses the training
                 * context's frozen weights (same tensors, same offsets) instead of a second copy */
                rt_backend_opts eo = bo;
                eo.share_frozen = &c, eo.quiet = 1;
                if (rt_backend_attach(&ev, &eo, &ev_cuda, verr2, sizeof verr2)) vrc = -1;
            } else if (ev_cuda) {
                vrc = rt_cuda_upload(&ev, AVGEN_ARENA_TRAIN, verr2, sizeof verr2) ? -1 : 0;  /* the trained state */
            }
            if (vrc == 0 && rt_evaluate(&ev, cfg->eval_forward, vl, &r, verr2, sizeof verr2) == 0) {
                val_loss = r.loss, val_top1 = rt_acc_top1(&r.clip);
                rt_eval_free(&r);
            } else {
                /* said whatever --quiet says, and in the log; on the GPU (out of memory, most likely: the plan
                 * counts the training graph only) validation stops for the rest of the run */
                fprintf(stderr, "\navgen train: validation failed: %s%s\n", verr2,
                        cuda ? "; no more validation in this run (no best.safetensors, no early stopping)" : "");
                char esc[600];
                size_t n = 0;
                for (const char *q = verr2; *q && n + 2 < sizeof esc; q++) {
                    if (*q == '"' || *q == '\\') esc[n++] = '\\';
                    esc[n++] = (*q == '\n' || *q == '\t') ? ' ' : *q;
                }
                esc[n] = 0;
                fprintf(log, "{\"validation_error\": \"%s\", \"epoch\": %lld}\n", esc, (long long)e);
                if (cuda) val_off = 1;
            }
        }
        int improved = val_top1 >= 0 && val_top1 > st.best_val;
        if (improved) {
            st.best_val = val_top1, st.bad_epochs = 0;
            char bp[2400];
            snprintf(bp, sizeof bp, "%s/best.safetensors", cfg->run_dir);
            if (save_tensors(&c, bp, err, errlen)) { rc = 1; break; }
        } else if (val_top1 >= 0) {
            st.bad_epochs++;
        }
        const double train_loss = st.epoch_steps ? st.epoch_loss / st.epoch_steps : 0;
        if (!stop) st.epoch = e + 1, st.batch = 0, st.epoch_loss = 0, st.epoch_steps = 0;
        fprintf(log, "{\"epoch_end\": %lld, \"train_loss\": %.9g, \"val_loss\": %.9g, \"val_top1\": %.9g, \"best_val_top1\": %.9g}\n",
                (long long)e, train_loss, val_loss, val_top1, st.best_val);
        fflush(log);
        if (save_checkpoint(cfg, &c, &st, err, errlen)) { rc = 1; break; }
        if (!cfg->quiet)
            fprintf(stderr, "\n[epoch %lld] train loss %.4f, validation loss %.4f top-1 %.3f%s\n", (long long)e + 1, train_loss,
                    val_loss, val_top1, improved ? " (best)" : "");
        if (cfg->patience > 0 && st.bad_epochs >= cfg->patience) {
            if (!cfg->quiet) fprintf(stderr, "avgen train: no validation improvement for %d epochs: stopping\n", cfg->patience);
            stop = 1;
        }
    }
    fclose(log);
    if (!rc) {
        ld_stats lst = ld_get_stats(tl);
        double el = rt_now() - ls.t_start;
        char summary[2048];
        snprintf(summary, sizeof summary,
                 "{\"name\": \"%s\", \"steps\": %lld, \"epochs\": %lld, \"seconds\": %.3f, \"clips_per_s\": %.3f, "
                 "\"pairs_per_s\": %.3f, \"best_val_top1\": %.9g, \"trainable_params\": %lld, \"data_wait_s\": %.3f, "
                 "\"corrupt_frames\": %lld, \"bad_clips\": %lld, \"cuda_graph_launches\": %lld}\n",
                 cfg->name ? cfg->name : "", (long long)st.step, (long long)st.epoch, el,
                 el > 0 ? (double)lst.clips / el : 0, el > 0 ? (double)lst.clips * cfg->k->frames / el : 0, st.best_val,
                 (long long)cfg->trainable_params, wait_total, (long long)lst.corrupt_frames, (long long)lst.bad_clips,
                 c.dev ? rt_cuda_graph_launches(&c) : 0LL);
        snprintf(path, sizeof path, "%s/summary.json", cfg->run_dir);
        if (rt_write_atomic(path, summary)) {
            snprintf(err, errlen, "cannot write %s", path);
            rc = 1;
        }
    }
done:
    st_close(wf);
    if (have_ev && ev.dev) rt_cuda_detach(&ev);  /* first: it may use the training context's frozen arena */
    if (c.dev) rt_cuda_detach(&c);
    rt_ctx_free(&c);
    if (have_ev) rt_ctx_free(&ev);
    ld_close(tl);
    ld_close(vl);
    return rc;
}

int rt_checkpoint_path(const char *arg, char *path, size_t n, char *err, size_t errlen) {
    struct stat st;
    if (stat(arg, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(path, n, "%s", arg);
        return 0;
    }
    snprintf(path, n, "%s/best.safetensors", arg);
    if (stat(path, &st) == 0) return 0;
    char cj[2300];
    snprintf(cj, sizeof cj, "%s/checkpoint.json", arg);
    json_object *o = json_object_from_file(cj), *x;
    const int ok = o && json_object_object_get_ex(o, "file", &x) && json_object_is_type(x, json_type_string);
    if (ok) snprintf(path, n, "%s/%s", arg, json_object_get_string(x));
    else snprintf(err, errlen, "%s has neither best.safetensors nor checkpoint.json; expected a run folder", arg);
    json_object_put(o);
    return ok ? 0 : 2;
}
